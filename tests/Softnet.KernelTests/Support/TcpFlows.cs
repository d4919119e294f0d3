using System.Buffers.Binary;
using Softnet.Capture;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Transport;

namespace Softnet.KernelTests.Support;

/// <summary>
/// The client half of TCP connections to a Softnet (or kernel) server, written as a capture: the client's frames as
/// they arrive on the server's device (pcapng, if_name = that device). Softnet's ISN and timestamp offset are
/// deterministic (<see cref="TcpSecure"/>, key 0, clock = the capture's timestamps), so every client segment after
/// the SYN acknowledges Softnet's SYN-ACK and echoes its timestamps exactly as a real client would. The kernel run
/// (<see cref="TcpKernelRun"/>) shifts them into the kernel's random sequence space.
/// </summary>
/// <remarks>
/// Time is a cursor: each frame is stamped with <see cref="Now"/>, which then advances by the frame's gap (1 ms unless
/// told otherwise); <see cref="Pause"/> moves it further. Flows share the cursor, so frames stay in time order.
/// </remarks>
public sealed class TcpCapture
{
    /// <summary>A whole second plus 100 µs: frames a few µs apart in Softnet's virtual time stay in the same
    /// millisecond, so the TSval Softnet sends is the TSval computed here.</summary>
    public const long DefaultStartNs = 1_700_000_000_000_000_000 + 100_000;

    private readonly List<(long T, byte[] Frame, string Note)> _frames = [];

    public TcpCapture(string device = "eth0", string clientMac = "02:00:0a:4d:00:02", string serverMac = "02:00:0a:4d:00:01",
        long startNs = DefaultStartNs)
    {
        Device = device;
        ClientMac = Frames.Mac(clientMac);
        ServerMac = Frames.Mac(serverMac);
        Now = startNs;
    }

    /// <summary>The server's device, the capture's if_name.</summary>
    public string Device { get; }
    public byte[] ClientMac { get; }
    public byte[] ServerMac { get; }

    /// <summary>Capture time of the next frame, ns since the epoch.</summary>
    public long Now { get; private set; }

    /// <summary>The frames so far with their times and a readable note each.</summary>
    public IReadOnlyList<(long T, byte[] Frame, string Note)> Emitted => _frames;

    /// <summary>Moves the clock on without sending.</summary>
    public TcpCapture Pause(double ms)
    {
        Now += (long)(ms * 1_000_000);
        return this;
    }

    /// <summary>A client connection from CLIENT:PORT to SERVER:PORT whose SYN carries <paramref name="clientIsn"/>.</summary>
    public TcpFlow Flow(string client, ushort clientPort, string server, ushort serverPort, uint clientIsn = 0x10000000, bool timestamps = true)
        => new(this, client, clientPort, server, serverPort, clientIsn, timestamps);

    internal void Emit(byte[] ipPacket, double gapMs, string note)
    {
        var f = new byte[14 + ipPacket.Length];
        ServerMac.CopyTo(f, 0);
        ClientMac.CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), (ipPacket[0] >> 4) == 6 ? (ushort)0x86DD : (ushort)0x0800);
        ipPacket.CopyTo(f, 14);
        EmitFrame(f, gapMs, note);
    }

    internal void EmitFrame(byte[] frame, double gapMs, string note)
    {
        _frames.Add((Now, frame, note));
        Pause(gapMs);
    }

    /// <summary>Writes the capture: pcapng with ns timestamps, one interface named <see cref="Device"/>.</summary>
    public void Write(string path)
    {
        using var w = PcapngWriter.Create(path, [new CaptureInterface(LinkType.Ethernet, 262144, Device, 1_000_000_000)]);
        foreach (var (t, frame, _) in _frames) w.Write(t, frame);
    }
}

/// <summary>
/// One client connection in a <see cref="TcpCapture"/>: a Linux-like client (SYN options mss 1460, sackOK, TS, nop,
/// ws 7; later segments nop, nop, TS; window 502 × 128; IP DF, TTL 64, an IP ID counter; over IPv6 when the addresses
/// are IPv6 ones: traffic class 0, flow label 0, hop limit 64, and the SYN's MSS 1440) whose payload byte at
/// stream offset k is a fixed function of k, so a retransmission or duplicate carries the same bytes.
/// </summary>
public sealed class TcpFlow
{
    public const byte Fin = 0x01, Syn = 0x02, Rst = 0x04, Psh = 0x08, Ack = 0x10;

    /// <summary>Client TSval at its SYN; the client's timestamp clock then counts milliseconds of capture time.</summary>
    public const uint ClientTsBase = 1_000_000;

    private readonly TcpCapture _cap;
    private readonly byte[] _clientIp, _serverIp;
    private ushort _ipId;
    private long _synNs;
    private long _lastNs;
    private byte[]? _lastFrame;

    private readonly bool _timestamps;

    internal TcpFlow(TcpCapture cap, string client, ushort clientPort, string server, ushort serverPort, uint clientIsn, bool timestamps = true)
    {
        _timestamps = timestamps;
        _cap = cap;
        Client = client;
        Server = server;
        V6 = client.Contains(':');
        _clientIp = V6 ? Frames6.Addr(client) : Frames.Ip4(client);
        _serverIp = V6 ? Frames6.Addr(server) : Frames.Ip4(server);
        ClientPort = clientPort;
        ServerPort = serverPort;
        ClientIsn = clientIsn;
        // Any start works; a per-port one keeps two flows' IDs apart in a trace.
        _ipId = (ushort)(clientPort * 13);
        // A flow that never sends its SYN (a stray segment) starts its timestamp clock here.
        _synNs = _lastNs = cap.Now;
    }

    /// <summary>The connection runs over IPv6.</summary>
    public bool V6 { get; }
    public string Client { get; }
    public string Server { get; }
    public ushort ClientPort { get; }
    public ushort ServerPort { get; }
    public uint ClientIsn { get; }

    /// <summary>Softnet's ISN for this connection (known once <see cref="SendSyn"/> ran).</summary>
    public uint ServerIsn { get; private set; }

    /// <summary>Softnet's timestamp offset for this connection.</summary>
    public uint TsOffset { get; private set; }

    /// <summary>The server runs with net.ipv4.tcp_timestamps = 2: timestamps without a per-connection offset.</summary>
    [ThreadStatic] public static bool ServerTsOffsetZero;

    /// <summary>Stream offset of the next new byte (0 = the first byte after the SYN).</summary>
    public long Sent { get; private set; }

    /// <summary>True once the client sent its FIN.</summary>
    public bool FinSent { get; private set; }

    /// <summary>What the client acknowledges beyond the server's ISN: 1 after the SYN-ACK, 2 after the server's FIN.</summary>
    public uint ServerConsumed { get; private set; } = 1;

    /// <summary>Payload byte at stream offset <paramref name="k"/>.</summary>
    public static byte PayloadByte(long k) => (byte)(k * 7 + (k >> 8) + 0x41);

    /// <summary>The SYN. Softnet answers it at this very capture time, so its ISN and TS offset are fixed here.</summary>
    /// <param name="cookie">Softnet answers with a SYN cookie (its request queue is over the backlog): the ISN is the
    /// cookie (the flow without timestamps only: a cookie's TSval is not modelled here).</param>
    /// <param name="data">Payload bytes in the SYN itself (TCP Fast Open), stream offsets 0 on.</param>
    /// <param name="fastOpen">A Fast Open option (34) after the others, as a Linux client puts it: this cookie, or
    /// with an empty one a cookie request; two NOPs pad it to a word.</param>
    public TcpFlow SendSyn(double gapMs = 1, bool cookie = false, int data = 0, byte[]? fastOpen = null)
    {
        _synNs = _cap.Now;
        int mss = V6 ? 1440 : 1460;
        if (V6)
        {
            UInt128 s6 = BinaryPrimitives.ReadUInt128BigEndian(_serverIp), d6 = BinaryPrimitives.ReadUInt128BigEndian(_clientIp);
            (ServerIsn, TsOffset) = TcpSecure.SeqAndTsOff6(0, s6, d6, ServerPort, ClientPort, _synNs);
            if (ServerTsOffsetZero) TsOffset = 0;
            if (cookie)
            {
                if (_timestamps) throw new InvalidOperationException("a cookie flow is modelled without timestamps");
                int m = mss;
                ServerIsn = TcpSyncookies.InitSequence6(0, d6, s6, ClientPort, ServerPort, ClientIsn, ref m, _synNs);
            }
        }
        else
        {
            uint saddr = BinaryPrimitives.ReadUInt32BigEndian(_serverIp), daddr = BinaryPrimitives.ReadUInt32BigEndian(_clientIp);
            (ServerIsn, TsOffset) = TcpSecure.SeqAndTsOff(0, saddr, daddr, ServerPort, ClientPort, _synNs);
            if (ServerTsOffsetZero) TsOffset = 0;
            if (cookie)
            {
                if (_timestamps) throw new InvalidOperationException("a cookie flow is modelled without timestamps");
                int m = mss;
                ServerIsn = TcpSyncookies.InitSequence(0, daddr, saddr, ClientPort, ServerPort, ClientIsn, ref m, _synNs);
            }
        }
        byte mh = (byte)(mss >> 8), ml = (byte)mss;
        byte[] opts = _timestamps ? [2, 4, mh, ml, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7] : [2, 4, mh, ml, 1, 1, 4, 2, 1, 3, 3, 7];
        if (_timestamps) BinaryPrimitives.WriteUInt32BigEndian(opts.AsSpan(8), ClientTsBase);
        if (fastOpen != null)
        {
            byte[] tfo = [34, (byte)(2 + fastOpen.Length), .. fastOpen];
            opts = [.. opts, .. tfo, .. (tfo.Length & 3) == 2 ? new byte[] { 1, 1 } : []];
        }
        Send(Syn, ClientIsn, 0, 64240, opts, 0, data, gapMs, data > 0 ? $"SYN [0,{data})" : "SYN");
        Sent += data;
        return this;
    }

    /// <summary>A segment with the connection's ACK: <paramref name="len"/> payload bytes from stream offset
    /// <paramref name="offset"/> (new data or not: nothing is advanced).</summary>
    public TcpFlow Segment(long offset, int len, byte flags = Ack | Psh, double gapMs = 1, string? note = null)
    {
        Send(flags, (uint)(ClientIsn + 1 + offset), ServerIsn + ServerConsumed, 502, TsOption(), offset, len, gapMs,
            note ?? $"{FlagText(flags)} [{offset},{offset + len})");
        return this;
    }

    /// <summary>The third ACK of the handshake, optionally carrying data.</summary>
    public TcpFlow SendAck(int len = 0, bool psh = true, double gapMs = 1)
        => len == 0 ? Segment(Sent, 0, Ack, gapMs, "ACK") : Data(len, psh, gapMs);

    /// <summary>New data at the end of the stream.</summary>
    public TcpFlow Data(int len, bool psh = true, double gapMs = 1)
    {
        Segment(Sent, len, psh ? (byte)(Ack | Psh) : Ack, gapMs);
        Sent += len;
        return this;
    }

    /// <summary>New data that the network loses: the stream moves on, nothing is sent. Returns the lost range's start.</summary>
    public long Lose(int len)
    {
        long at = Sent;
        Sent += len;
        return at;
    }

    /// <summary>Moves the end of the stream back to <paramref name="offset"/> (after <see cref="Lose"/> aimed a
    /// segment beyond it).</summary>
    public TcpFlow Rewind(long offset)
    {
        Sent = offset;
        return this;
    }

    /// <summary>The last frame of this flow once more, byte for byte (a duplicate made by the network).</summary>
    public TcpFlow Duplicate(double gapMs = 1)
    {
        if (_lastFrame == null) throw new InvalidOperationException("nothing to duplicate");
        _cap.EmitFrame(_lastFrame, gapMs, "duplicate");
        return this;
    }

    /// <summary>FIN|ACK at the end of the stream, with <paramref name="len"/> bytes of data in it if asked.</summary>
    public TcpFlow SendFin(int len = 0, double gapMs = 1)
    {
        Segment(Sent, len, len > 0 ? (byte)(Fin | Ack | Psh) : (byte)(Fin | Ack), gapMs);
        Sent += len;
        FinSent = true;
        return this;
    }

    /// <summary>The ACK of the server's FIN.</summary>
    public TcpFlow AckServerFin(double gapMs = 1)
    {
        ServerConsumed = 2;
        return Segment(Sent + (FinSent ? 1 : 0), 0, Ack, gapMs, "ACK of the server's FIN");
    }

    /// <summary>A reset at the end of the stream, without ACK and options (what a Linux client's abort sends
    /// once the connection is established: seq = snd_nxt).</summary>
    public TcpFlow SendRst(double gapMs = 1)
    {
        Send(Rst, (uint)(ClientIsn + 1 + Sent), 0, 0, [], 0, 0, gapMs, "RST");
        return this;
    }

    /// <summary>An ICMPv6 error from the client about the server's SYN-ACK (type/code, e.g. 1/4 port unreachable), quoting
    /// its IPv6 header and the first 8 bytes of TCP (ports and seq = the server's ISN).</summary>
    public TcpFlow SendIcmp6Error(byte type, byte code, double gapMs = 1)
    {
        if (!V6) throw new InvalidOperationException("an ICMPv6 error needs an IPv6 flow");
        var quoted = new byte[48];
        Ipv6View.Write(quoted, 40, 6, 64, _serverIp, _clientIp);
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(40), ServerPort);
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(42), ClientPort);
        BinaryPrimitives.WriteUInt32BigEndian(quoted.AsSpan(44), ServerIsn);
        var icmp = new byte[8 + quoted.Length];
        icmp[0] = type;
        icmp[1] = code;
        if (type == 2) BinaryPrimitives.WriteUInt32BigEndian(icmp.AsSpan(4), 1280);
        quoted.CopyTo(icmp, 8);
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), Checksum.Compute(icmp, Checksum.PseudoHeaderV6(_clientIp, _serverIp, 58, icmp.Length)));
        _cap.Emit(Frames6.Ipv6(Client, Server, 58, icmp), gapMs, $"[{Client}]:{ClientPort} ICMPv6 {type}/{code} about the SYN-ACK");
        return this;
    }

    /// <summary>An ICMP host redirect (type 5 code 1) from <paramref name="oldGateway"/>, the hop the server reaches the
    /// client by, naming <paramref name="newGateway"/>, quoting the server's segment to the client with sequence ISN +
    /// <paramref name="seqFromIsn"/> (the kernel run moves it into the kernel's sequence space).</summary>
    public TcpFlow SendIcmpRedirect(string oldGateway, string newGateway, uint seqFromIsn, double gapMs = 1)
    {
        if (V6) throw new InvalidOperationException("an ICMP redirect needs an IPv4 flow");
        var tcp = new byte[8];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, ServerPort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), ClientPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(4), ServerIsn + seqFromIsn);
        var quoted = Frames.Ipv4(Server, Client, 6, tcp, 64, 0);
        var icmp = new byte[8 + quoted.Length];
        icmp[0] = 5;
        icmp[1] = 1;
        Frames.Ip4(newGateway).CopyTo(icmp, 4);
        quoted.CopyTo(icmp, 8);
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), Checksum.Compute(icmp));
        _cap.Emit(Frames.Ipv4(oldGateway, Server, 1, icmp, 64, 0), gapMs, $"{oldGateway} ICMP redirect to {newGateway} quoting seq ISN+{seqFromIsn}");
        return this;
    }

    /// <summary>nop, nop, TS: TSval the client's ms clock; TSecr the TSval of the server's latest segment, which
    /// answered this flow's previous frame at that frame's capture time (Softnet answers in the same instant).</summary>
    private byte[] TsOption()
    {
        if (!_timestamps) return [];
        var o = new byte[12];
        o[0] = 1; o[1] = 1; o[2] = 8; o[3] = 10;
        BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(4), ClientTsVal());
        BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(8), TcpSecure.TsVal(_lastNs, TsOffset));
        return o;
    }

    private uint ClientTsVal() => ClientTsBase + (uint)((_cap.Now - _synNs) / 1_000_000);

    private void Send(byte flags, uint seq, uint ack, ushort window, byte[] options, long offset, int len, double gapMs, string note)
    {
        var t = new byte[20 + options.Length + len];
        BinaryPrimitives.WriteUInt16BigEndian(t, ClientPort);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), ServerPort);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(8), ack);
        t[12] = (byte)((20 + options.Length) / 4 << 4);
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(14), window);
        options.CopyTo(t, 20);
        for (int i = 0; i < len; i++) t[20 + options.Length + i] = PayloadByte(offset + i);
        ushort c = Checksum.Compute(t, V6 ? Checksum.PseudoHeaderV6(_clientIp, _serverIp, 6, t.Length) : Checksum.PseudoHeaderV4(_clientIp, _serverIp, 6, t.Length));
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(16), c);
        var ip = V6 ? Frames6.Ipv6(Client, Server, 6, t) : Frames.Ipv4(Client, Server, 6, t, 64, _ipId++);
        _lastNs = _cap.Now;
        _cap.Emit(ip, gapMs, V6 ? $"[{Client}]:{ClientPort} {note}" : $"{Client}:{ClientPort} {note}");
        _lastFrame = _cap.Emitted[^1].Frame;
    }

    private static string FlagText(byte f)
        => string.Concat(new[] { (Fin, "F"), (Syn, "S"), (Rst, "R"), (Psh, "P"), (Ack, "A") }.Where(x => (f & x.Item1) != 0).Select(x => x.Item2));
}
