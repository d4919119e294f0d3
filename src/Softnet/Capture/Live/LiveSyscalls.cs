using System.Runtime.InteropServices;

namespace Softnet.Capture.Live;

/// <summary>The libc pieces every live port (and <see cref="LivePortSet"/>) uses alike: the socket, mmap, lock and
/// poll(2) calls and the interface's up-and-running test. Each port kind keeps its own send/receive calls and uapi
/// constants (PacketSyscalls, XskSyscalls).</summary>
internal static unsafe class LiveSyscalls
{
    private const ulong SiocGifFlags = 0x8913;
    public const short IffUp = 1, IffRunning = 0x40;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events, Revents;
    }

    [DllImport("libc", SetLastError = true)] public static extern int poll(PollFd* fds, nuint n, int timeoutMs);
    [DllImport("libc", SetLastError = true)] public static extern int ioctl(int fd, ulong request, void* arg);
    [DllImport("libc", SetLastError = true)] public static extern int socket(int domain, int type, int protocol);
    [DllImport("libc", SetLastError = true)] public static extern int bind(int fd, void* addr, int len);
    [DllImport("libc", SetLastError = true)] public static extern int setsockopt(int fd, int level, int name, void* val, int len);
    [DllImport("libc", SetLastError = true)] public static extern int getsockopt(int fd, int level, int name, void* val, int* len);
    [DllImport("libc", SetLastError = true)] public static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);
    [DllImport("libc", SetLastError = true)] public static extern int munmap(nint addr, nuint length);
    [DllImport("libc", SetLastError = true)] public static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);
    [DllImport("libc", SetLastError = true)] public static extern int flock(int fd, int op);

    /// <summary>The interface name as ifr_name wants it: ASCII, NUL-padded to IFNAMSIZ (16).</summary>
    public static byte[] IfName(string ifname)
    {
        var b = new byte[16];
        System.Text.Encoding.ASCII.GetBytes(ifname).AsSpan(0, Math.Min(ifname.Length, 15)).CopyTo(b);
        return b;
    }

    /// <summary>SIOCGIFFLAGS through <paramref name="fd"/> (any socket in the interface's namespace): up with carrier
    /// means IFF_UP and IFF_RUNNING. <paramref name="ifname"/> is the NUL-padded ifr_name (<see cref="IfName"/>).</summary>
    public static bool IfUpRunning(int fd, ReadOnlySpan<byte> ifname)
    {
        byte* ifr = stackalloc byte[40];
        new Span<byte>(ifr, 40).Clear();
        ifname.CopyTo(new Span<byte>(ifr, 16));
        if (ioctl(fd, SiocGifFlags, ifr) != 0) return false;
        short flags = *(short*)(ifr + 16);
        return (flags & (IffUp | IffRunning)) == (IffUp | IffRunning);
    }
}
