using Softnet.Capture.Live;
using static Softnet.Capture.Live.LiveSyscalls;
using static Softnet.Capture.Live.PacketSyscalls;

namespace Softnet.KernelTests.Support;

/// <summary>
/// A plain AF_PACKET SOCK_RAW socket (no ring) bound to one interface of a namespace: the independent sender and
/// receiver the live-port tests compare against, one send(2) or recv(2) per frame.
/// </summary>
public sealed unsafe class RawPacketSocket : IDisposable
{
    private const int SO_RCVBUFFORCE = 33;
    private int _fd;

    public RawPacketSocket(string? netns, string ifname)
    {
        using (new NetnsScope(netns))
            _fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (_fd < 0) throw new InvalidOperationException($"socket(AF_PACKET): errno {Errno}");
        MakeIfReq(ifname, out var req);
        if (ioctl(_fd, SIOCGIFINDEX, &req) != 0) throw new InvalidOperationException($"SIOCGIFINDEX {ifname}: errno {Errno}");
        // Room for everything a test sends before it reads (packet_rcv drops past sk_rcvbuf).
        SetInt(_fd, SOL_SOCKET, SO_RCVBUFFORCE, 256 << 20);
        var sll = new SockaddrLl { Family = AF_PACKET, Protocol = Htons(ETH_P_ALL), Ifindex = req.Value };
        if (bind(_fd, &sll, sizeof(SockaddrLl)) != 0) throw new InvalidOperationException($"bind {ifname}: errno {Errno}");
    }

    public void Send(ReadOnlySpan<byte> frame)
    {
        fixed (byte* p = frame)
            if (send(_fd, p, (nuint)frame.Length, 0) != frame.Length)
                throw new InvalidOperationException($"send: errno {Errno}");
    }

    /// <summary>The next frame the socket hears, or null after <paramref name="timeoutMs"/>.</summary>
    public byte[]? Receive(int timeoutMs)
    {
        var pfd = new PollFd { Fd = _fd, Events = POLLIN };
        if (poll(&pfd, 1, timeoutMs) <= 0) return null;
        var buf = new byte[65536];
        nint n;
        fixed (byte* p = buf) n = recv(_fd, p, (nuint)buf.Length, MSG_DONTWAIT);
        return n < 0 ? null : buf.AsSpan(0, (int)n).ToArray();
    }

    public void Dispose()
    {
        if (_fd >= 0) close(_fd);
        _fd = -1;
    }
}
