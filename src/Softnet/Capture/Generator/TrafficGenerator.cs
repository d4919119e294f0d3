using System.Buffers.Binary;
using System.Net.Sockets;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Capture.Generator;

/// <summary>Totals of what a generator has emitted so far.</summary>
/// <param name="PayloadBytes">Test data carried (TCP segment data and UDP datagrams, not the UDP connect messages).</param>
public readonly record struct GeneratorStats(
    long Frames, long FrameBytes, long PayloadBytes, int Streams, long FirstTimestampNs, long LastTimestampNs);

/// <summary>
/// Produces iperf3 traffic as a capture between client and server would show it: per TCP stream the
/// three-way handshake, MSS-sized data segments carrying iperf3's "0123456789" write buffer, the receiver's
/// delayed ACKs (one per two segments), and the FIN teardown; per UDP stream iperf3's connect/reply
/// datagrams and then datagrams carrying its (sec, usec, packet count) header.
/// <para>
/// Time is a discrete-event model kept in picoseconds: every stream paces its data at its share of the test
/// rate, every frame then waits for its direction of the link to be free (frames are serialised at
/// <see cref="GeneratorOptions.LinkBitsPerSecond"/>), and the earliest pending frame over all streams is
/// emitted next, so parallel streams interleave round-robin as on a real link. Nothing is allocated per frame.
/// </para>
/// </summary>
public sealed class TrafficGenerator
{
    /// <summary>Bytes a frame occupies on the wire beyond what a capture holds: preamble+SFD 8, FCS 4, IFG 12.</summary>
    public const int WireOverhead = 24;

    /// <summary>ETH_ZLEN: NICs pad shorter frames to this before adding the FCS.</summary>
    public const int MinFrameLength = 60;

    private const long Never = long.MaxValue;
    private const long PsPerMs = 1_000_000_000;
    private const ushort SynWindowClient = 64240;
    private const ushort SynWindowServer = 65160;
    private const ushort WindowClient = 502;    // x128 = 64256 bytes, what Linux advertises after the handshake
    private const ushort WindowServer = 3000;   // x128 = 384000 bytes: the receiver's grown window, never limiting
    private const byte WindowScale = 7;
    private const uint UdpConnectMsg = 0x36373839;   // iperf3 UDP_CONNECT_MSG, written in host (little-endian) order
    private const uint UdpConnectReply = 0x39383736; // UDP_CONNECT_REPLY

    private const byte Fin = 0x01, Syn = 0x02, Psh = 0x08, Ack = 0x10;

    /// <summary>"0123456789" repeated, long enough to copy any segment's run in one go.</summary>
    private static readonly byte[] Pattern = BuildPattern(65536 + 16);

    private readonly Flow[] _flows;
    private readonly long _baseNs;
    private readonly double _psPerLinkByte;
    private readonly long[] _linkFree = new long[2]; // picoseconds; [0] client -> server, [1] server -> client
    private long _now;
    private long _frames, _frameBytes, _payloadBytes, _firstNs = -1, _lastNs;

    public TrafficGenerator(GeneratorOptions options) : this([options]) { }

    private readonly ulong? _serverKey;
    private readonly bool _clientOnly;

    /// <summary>Runs several iperf3 tests side by side on one link (one capture).</summary>
    public TrafficGenerator(IReadOnlyList<GeneratorOptions> tests)
    {
        ArgumentNullException.ThrowIfNull(tests);
        if (tests.Count == 0) throw new ArgumentException("at least one test is needed", nameof(tests));
        foreach (var t in tests) t.Validate();

        _baseNs = tests.Min(t => t.StartTimestampNs);
        _serverKey = tests[0].ServerKey;
        _clientOnly = tests[0].ServerKey is not null;
        if (tests.Any(t => t.ServerKey != _serverKey)) throw new ArgumentException("every test of one capture answers the same server key");
        _psPerLinkByte = 8e12 / tests[0].LinkBitsPerSecond;
        var flows = new List<Flow>();
        var usedPorts = new HashSet<int>();
        for (int ti = 0; ti < tests.Count; ti++)
        {
            var o = tests[ti];
            var rng = new SplitMix64(o.Seed ^ (0x9E3779B97F4A7C15UL * (ulong)(ti + 1)));
            long rttHalf = ToPs(o.Rtt) / 2;
            long startPs = (o.StartTimestampNs - _baseNs) * 1000;
            long spacing = 3 * rttHalf;
            long dataStart = startPs + o.Streams * spacing + 2 * rttHalf;
            long dataEnd = o.EffectiveDuration is { } d ? dataStart + ToPs(d) : Never;
            var rate = o.EffectiveRate;
            double shareBps = (rate.IsMax ? o.LinkBitsPerSecond : rate.BitsPerSecond) / o.Streams;
            for (int s = 0; s < o.Streams; s++)
            {
                var f = new Flow
                {
                    Udp = o.Protocol == TrafficProtocol.Udp,
                    V6 = o.Ipv6,
                    Vlan = o.Vlan ?? -1,
                    ClientMac = o.ClientMac.GetAddressBytes(),
                    ServerMac = o.ServerMac.GetAddressBytes(),
                    ClientIp = o.EffectiveClient.GetAddressBytes(),
                    ClientIpAtServer = (o.ClientSeenByServer ?? o.EffectiveClient).GetAddressBytes(),
                    ServerIp = o.EffectiveServer.GetAddressBytes(),
                    ServerPort = (ushort)o.ServerPort,
                    Mss = o.EffectiveMss,
                    Block = o.EffectiveBlockSize,
                    Quota = o.Bytes is { } total ? total / o.Streams + (s < total % o.Streams ? 1 : 0) : -1,
                    DataStartPs = dataStart,
                    DataEndPs = dataEnd,
                    PsPerPacket = rate.IsPacketRate ? (long)Math.Round(1e12 * o.Streams / rate.PacketsPerSecond) : 0,
                    PsPerWireByte = 8e12 / shareBps,
                    RttHalfPs = rttHalf,
                    AckDelayPs = ToPs(o.AckDelay),
                };
                int port;
                do port = 32768 + (int)rng.Below(60999 - 32768 + 1);
                while (!usedPorts.Add(port));
                f.ClientPort = (ushort)port;
                f.IsnC = (uint)rng.Next();
                f.IsnS = (uint)rng.Next();
                f.TsOffC = (uint)rng.Next();
                f.TsOffS = (uint)rng.Next();
                f.IdC = (ushort)rng.Next();
                f.IdS = (ushort)rng.Next();
                f.LabelC = 1 + (uint)rng.Below(0xFFFFF);
                f.LabelS = 1 + (uint)rng.Below(0xFFFFF);
                // Stagger the streams' pacing phases so that together they arrive evenly spaced at the test rate.
                f.DataStartPs += s * Interval(f, FrameLength(f, (f.Udp ? 8 : 32) + f.Mss)) / o.Streams;
                f.Step = f.Udp ? ClientStep.UdpConnect : ClientStep.Syn;
                f.ClientAtPs = startPs + s * spacing;
                flows.Add(f);
                MaxFrameLength = Math.Max(MaxFrameLength, FrameLength(f, f.Udp ? 8 + f.Mss : Math.Max(40, 32 + f.Mss)));
            }
        }
        _flows = [.. flows];
    }

    /// <summary>The largest frame this generator emits; <see cref="TryNext"/> needs a buffer at least this big.</summary>
    public int MaxFrameLength { get; }

    public GeneratorStats Stats => new(_frames, _frameBytes, _payloadBytes, _flows.Length, Math.Max(_firstNs, 0), _lastNs);

    /// <summary>Writes the next frame into <paramref name="buffer"/>; false when every stream has finished.</summary>
    public bool TryNext(Span<byte> buffer, out int length, out long timestampNs)
    {
        if (buffer.Length < MaxFrameLength)
            throw new ArgumentException($"buffer of {buffer.Length} bytes is smaller than MaxFrameLength {MaxFrameLength}", nameof(buffer));
    next:
        Flow? best = null;
        bool bestServer = false;
        long bestAt = Never;
        foreach (var f in _flows)
        {
            if (f.ClientAtPs != Never)
            {
                long at = Math.Max(Math.Max(f.ClientAtPs, _linkFree[0]), _now);
                if (at < bestAt) { best = f; bestAt = at; bestServer = false; }
            }
            if (f.Pending > 0)
            {
                long at = Math.Max(Math.Max(f.Ring[f.Head].AtPs, _linkFree[1]), _now);
                if (at < bestAt) { best = f; bestAt = at; bestServer = true; }
            }
        }
        if (best is null)
        {
            length = 0;
            timestampNs = _lastNs;
            return false;
        }

        _now = bestAt;
        if (bestServer && _clientOnly)
        {
            // The server's frame is the scenario socket's to send: its events still drive the client.
            _linkFree[1] = bestAt + WireTime(EmitServer(best, buffer, bestAt));
            goto next;
        }
        length = bestServer ? EmitServer(best, buffer, bestAt) : EmitClient(best, buffer, bestAt);
        _linkFree[bestServer ? 1 : 0] = bestAt + WireTime(length);
        timestampNs = _baseNs + bestAt / 1000;
        _frames++;
        _frameBytes += length;
        if (_firstNs < 0) _firstNs = timestampNs;
        _lastNs = timestampNs;
        return true;
    }

    /// <summary>Writes every remaining frame to a capture file.</summary>
    public GeneratorStats WriteTo(ICaptureWriter writer)
    {
        var buffer = new byte[MaxFrameLength];
        while (TryNext(buffer, out int len, out long ts))
            writer.Write(ts, buffer.AsSpan(0, len));
        writer.Flush();
        return Stats;
    }

    // ---- state machines ---------------------------------------------------------------------------------

    private int EmitClient(Flow f, Span<byte> b, long at)
    {
        int len;
        switch (f.Step)
        {
            case ClientStep.Syn:
                if (_serverKey is { } key)
                {
                    // The ISN and timestamp offset a Softnet listener with this key picks for the SYN at this time.
                    long synNs = _baseNs + at / 1000;
                    (f.IsnS, f.TsOffS) = Transport.TcpSecure.SeqAndTsOff(key, BinaryPrimitives.ReadUInt32BigEndian(f.ServerIp),
                        BinaryPrimitives.ReadUInt32BigEndian(f.ClientIpAtServer), f.ServerPort, f.ClientPort, synNs);
                }
                len = WriteTcp(b, f, true, Syn, f.IsnC, 0, SynWindowClient, 0, at);
                Wait(f, ClientStep.WaitSynAck);
                Push(f, at + f.RttHalfPs, ServerKind.SynAck, 0);
                return len;

            case ClientStep.HandshakeAck:
                len = WriteTcp(b, f, true, Ack, f.IsnC + 1, f.IsnS + 1, WindowClient, 0, at);
                if (f.Quota == 0) Schedule(f, ClientStep.Fin, at + f.RttHalfPs);
                else Schedule(f, ClientStep.Data, Math.Max(f.DataStartPs, at));
                return len;

            case ClientStep.Data when !f.Udp:
            {
                long off = f.Sent;
                int seg = f.Quota < 0 ? f.Mss : (int)Math.Min(f.Mss, f.Quota - off);
                f.Sent += seg;
                len = FrameLength(f, 32 + seg);
                long nextAt = f.ClientAtPs + Interval(f, len);
                bool last = (f.Quota >= 0 && f.Sent >= f.Quota) || nextAt >= f.DataEndPs;
                // PSH marks the segment that completes an application write (tcp_push at the end of sendmsg).
                bool push = last || (off + seg) / f.Block > off / f.Block;
                len = WriteTcp(b, f, true, (byte)(Ack | (push ? Psh : 0)), f.IsnC + 1 + (uint)off, f.IsnS + 1, WindowClient, seg, at, off);
                _payloadBytes += seg;
                // The receiver ACKs every second full segment (tcp_ack_snd_check's "more than one full frame"),
                // and a trailing odd segment once the sender stops.
                if (++f.Unacked >= 2 || last)
                {
                    Push(f, at + WireTime(len) + f.AckDelayPs, ServerKind.Ack, f.IsnC + 1 + (uint)f.Sent);
                    f.Unacked = 0;
                }
                if (last)
                {
                    f.FinalAck = f.IsnC + 1 + (uint)f.Sent;
                    Wait(f, ClientStep.WaitFinalAck);
                }
                else f.ClientAtPs = nextAt;
                return len;
            }

            case ClientStep.Fin:
                len = WriteTcp(b, f, true, Fin | Ack, f.IsnC + 1 + (uint)f.Sent, f.IsnS + 1, WindowClient, 0, at);
                Wait(f, ClientStep.WaitFinAck);
                Push(f, at + f.RttHalfPs, ServerKind.FinAck, f.IsnC + 2 + (uint)f.Sent);
                return len;

            case ClientStep.LastAck:
                len = WriteTcp(b, f, true, Ack, f.IsnC + 2 + (uint)f.Sent, f.IsnS + 2, WindowClient, 0, at);
                Wait(f, ClientStep.Done);
                return len;

            case ClientStep.UdpConnect:
                len = WriteUdpControl(b, f, true, UdpConnectMsg);
                Wait(f, ClientStep.WaitUdpReply);
                Push(f, at + f.RttHalfPs, ServerKind.UdpReply, 0);
                return len;

            case ClientStep.Data:
            {
                int size = f.Quota < 0 ? f.Mss : (int)Math.Min(f.Mss, f.Quota - f.Sent);
                f.Sent += size;
                f.UdpCount++;
                len = FrameLength(f, 8 + size);
                long nextAt = f.ClientAtPs + Interval(f, len);
                bool last = (f.Quota >= 0 && f.Sent >= f.Quota) || nextAt >= f.DataEndPs;
                len = WriteUdpData(b, f, size, _baseNs + at / 1000);
                _payloadBytes += size;
                if (last) Wait(f, ClientStep.Done);
                else f.ClientAtPs = nextAt;
                return len;
            }

            default:
                throw new InvalidOperationException($"client of stream {f.ClientPort} has nothing to send in {f.Step}");
        }
    }

    private int EmitServer(Flow f, Span<byte> b, long at)
    {
        var ev = f.Ring[f.Head];
        f.Head = (f.Head + 1) % f.Ring.Length;
        f.Pending--;
        int len;
        switch (ev.Kind)
        {
            case ServerKind.SynAck:
                len = WriteTcp(b, f, false, Syn | Ack, f.IsnS, f.IsnC + 1, SynWindowServer, 0, at);
                Schedule(f, ClientStep.HandshakeAck, at + f.RttHalfPs);
                return len;
            case ServerKind.Ack:
                len = WriteTcp(b, f, false, Ack, f.IsnS + 1, ev.AckNo, WindowServer, 0, at);
                // iperf3 closes its data sockets once the control connection has ended the test: about an RTT.
                if (f.Step == ClientStep.WaitFinalAck && ev.AckNo == f.FinalAck)
                    Schedule(f, ClientStep.Fin, at + 2 * f.RttHalfPs);
                return len;
            case ServerKind.FinAck:
                len = WriteTcp(b, f, false, Fin | Ack, f.IsnS + 1, ev.AckNo, WindowServer, 0, at);
                Schedule(f, ClientStep.LastAck, at + f.RttHalfPs);
                return len;
            default:
                len = WriteUdpControl(b, f, false, UdpConnectReply);
                if (f.Quota == 0) Wait(f, ClientStep.Done);
                else Schedule(f, ClientStep.Data, Math.Max(f.DataStartPs, at + f.RttHalfPs));
                return len;
        }
    }

    private static void Wait(Flow f, ClientStep step)
    {
        f.Step = step;
        f.ClientAtPs = Never;
    }

    private static void Schedule(Flow f, ClientStep step, long atPs)
    {
        f.Step = step;
        f.ClientAtPs = atPs;
    }

    private static void Push(Flow f, long atPs, ServerKind kind, uint ackNo)
    {
        if (f.Pending == f.Ring.Length)
        {
            // More ACKs outstanding than the ring holds: fold into the newest one (ACKs are cumulative).
            ref var newest = ref f.Ring[(f.Head + f.Pending - 1) % f.Ring.Length];
            newest.AckNo = ackNo;
            return;
        }
        f.Ring[(f.Head + f.Pending) % f.Ring.Length] = new ServerEvent { AtPs = atPs, Kind = kind, AckNo = ackNo };
        f.Pending++;
    }

    private long WireTime(int frameLength) => (long)Math.Round((frameLength + WireOverhead) * _psPerLinkByte);

    private static long Interval(Flow f, int frameLength)
        => f.PsPerPacket > 0 ? f.PsPerPacket : (long)Math.Round((frameLength + WireOverhead) * f.PsPerWireByte);

    private static long ToPs(TimeSpan t) => t.Ticks * 100_000;

    // ---- frame writers ----------------------------------------------------------------------------------

    private static int FrameLength(Flow f, int l4Length)
        => Math.Max(MinFrameLength, 14 + (f.Vlan >= 0 ? 4 : 0) + (f.V6 ? 40 : 20) + l4Length);

    /// <summary>Writes Ethernet (+802.1Q) and the IP header; returns the offset of the transport header.</summary>
    private static int WriteL2L3(Span<byte> b, Flow f, bool fromClient, byte protocol, int l4Length)
    {
        ulong dstMac = EthernetView.ReadMac(fromClient ? f.ServerMac : f.ClientMac);
        ulong srcMac = EthernetView.ReadMac(fromClient ? f.ClientMac : f.ServerMac);
        ushort etherType = f.V6 ? EtherTypes.Ipv6 : EtherTypes.Ipv4;
        int p = EthernetView.HeaderLength;
        if (f.Vlan >= 0)
        {
            EthernetView.Write(b, dstMac, srcMac, EtherTypes.Vlan);
            VlanView.Write(b[p..], 0, false, (ushort)f.Vlan, etherType);
            p += VlanView.HeaderLength;
        }
        else EthernetView.Write(b, dstMac, srcMac, etherType);
        var src = fromClient ? f.ClientIp : f.ServerIp;
        var dst = fromClient ? f.ServerIp : f.ClientIp;
        if (f.V6)
        {
            Ipv6View.Write(b[p..], l4Length, protocol, 64, src, dst, flowLabel: fromClient ? f.LabelC : f.LabelS);
            return p + Ipv6View.HeaderLength;
        }
        Ipv4View.Write(b[p..], Ipv4View.MinHeaderLength + l4Length, fromClient ? f.IdC++ : f.IdS++, dontFragment: true, 64,
            protocol, BinaryPrimitives.ReadUInt32BigEndian(src), BinaryPrimitives.ReadUInt32BigEndian(dst));
        return p + Ipv4View.MinHeaderLength;
    }

    private static uint PseudoSum(Flow f, bool fromClient, byte protocol, int l4Length)
    {
        var src = fromClient ? f.ClientIp : f.ServerIp;
        var dst = fromClient ? f.ServerIp : f.ClientIp;
        return f.V6 ? Checksum.PseudoHeaderV6(src, dst, protocol, l4Length) : Checksum.PseudoHeaderV4(src, dst, protocol, l4Length);
    }

    private static int Finish(Span<byte> b, int length)
    {
        if (length >= MinFrameLength) return length;
        b[length..MinFrameLength].Clear();
        return MinFrameLength;
    }

    private int WriteTcp(Span<byte> b, Flow f, bool fromClient, byte flags, uint seq, uint ack, ushort window,
        int payload, long at, long streamOffset = 0)
    {
        bool syn = (flags & Syn) != 0;
        int hdr = syn ? 40 : 32;
        int l4 = hdr + payload;
        int p = WriteL2L3(b, f, fromClient, (byte)ProtocolType.Tcp, l4);
        var t = b.Slice(p, l4);
        TcpView.Write(t, fromClient ? f.ClientPort : f.ServerPort, fromClient ? f.ServerPort : f.ClientPort, seq, ack,
            (TcpFlags)flags, window, hdr);

        // Linux TCP timestamps tick in milliseconds from a random per-connection offset; TSecr echoes the
        // newest TSval seen from the peer (0 on the first SYN).
        uint tsval = (fromClient ? f.TsOffC : f.TsOffS) + (uint)(at / PsPerMs);
        uint tsecr = fromClient ? f.LastTsS : f.LastTsC;
        if (fromClient) f.LastTsC = tsval; else f.LastTsS = tsval;
        var opt = t[20..hdr];
        if (syn)
        {
            // The order Linux uses (tcp_options_write): MSS, SACK-permitted, timestamps, NOP, window scale.
            opt[0] = 2; opt[1] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(opt[2..], (ushort)(f.Mss + 12)); // advertised MSS excludes options
            opt[4] = 4; opt[5] = 2;
            opt[6] = 8; opt[7] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(opt[8..], tsval);
            BinaryPrimitives.WriteUInt32BigEndian(opt[12..], tsecr);
            opt[16] = 1;
            opt[17] = 3; opt[18] = 3; opt[19] = WindowScale;
        }
        else
        {
            opt[0] = 1; opt[1] = 1;
            opt[2] = 8; opt[3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(opt[4..], tsval);
            BinaryPrimitives.WriteUInt32BigEndian(opt[8..], tsecr);
        }
        if (payload > 0) FillStream(t[hdr..], streamOffset, f.Block);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, PseudoSum(f, fromClient, (byte)ProtocolType.Tcp, l4)));
        return Finish(b, p + l4);
    }

    private static int WriteUdpControl(Span<byte> b, Flow f, bool fromClient, uint message)
    {
        int p = WriteUdpHeader(b, f, fromClient, 4);
        BinaryPrimitives.WriteUInt32LittleEndian(b[(p + 8)..], message);
        return FinishUdp(b, f, fromClient, p, 4);
    }

    private static int WriteUdpData(Span<byte> b, Flow f, int size, long timestampNs)
    {
        int p = WriteUdpHeader(b, f, true, size);
        var payload = b.Slice(p + 8, size);
        // iperf3 sends the same blksize buffer of pattern every time, its first 12 bytes overwritten by
        // the send time (seconds, microseconds) and the packet count, all big-endian.
        Pattern.AsSpan(0, size).CopyTo(payload);
        Span<byte> h = stackalloc byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(h, (uint)(timestampNs / 1_000_000_000));
        BinaryPrimitives.WriteUInt32BigEndian(h[4..], (uint)(timestampNs % 1_000_000_000 / 1000));
        BinaryPrimitives.WriteUInt32BigEndian(h[8..], f.UdpCount);
        h[..Math.Min(12, size)].CopyTo(payload);
        return FinishUdp(b, f, true, p, size);
    }

    private static int WriteUdpHeader(Span<byte> b, Flow f, bool fromClient, int payload)
    {
        int p = WriteL2L3(b, f, fromClient, (byte)ProtocolType.Udp, 8 + payload);
        UdpView.Write(b[p..], fromClient ? f.ClientPort : f.ServerPort, fromClient ? f.ServerPort : f.ClientPort, UdpView.HeaderLength + payload);
        return p;
    }

    private static int FinishUdp(Span<byte> b, Flow f, bool fromClient, int p, int payload)
    {
        var u = b.Slice(p, 8 + payload);
        ushort sum = Checksum.Compute(u, PseudoSum(f, fromClient, (byte)ProtocolType.Udp, u.Length));
        BinaryPrimitives.WriteUInt16BigEndian(u[6..], sum == 0 ? (ushort)0xFFFF : sum); // 0 means "no checksum"
        return Finish(b, p + u.Length);
    }

    /// <summary>
    /// Fills stream bytes [offset, offset + dst.Length): iperf3 writes one blksize buffer of "0123456789..."
    /// again and again, so byte o of the stream is the digit (o mod blksize) mod 10.
    /// </summary>
    private static void FillStream(Span<byte> dst, long offset, int block)
    {
        while (!dst.IsEmpty)
        {
            int inBlock = (int)(offset % block);
            int run = Math.Min(dst.Length, Math.Min(block - inBlock, Pattern.Length - 10));
            Pattern.AsSpan(inBlock % 10, run).CopyTo(dst);
            dst = dst[run..];
            offset += run;
        }
    }

    private static byte[] BuildPattern(int length)
    {
        var p = new byte[length];
        for (int i = 0; i < p.Length; i++) p[i] = (byte)('0' + i % 10);
        return p;
    }

    private enum ClientStep : byte
    {
        Syn, WaitSynAck, HandshakeAck, Data, WaitFinalAck, Fin, WaitFinAck, LastAck, UdpConnect, WaitUdpReply, Done,
    }

    private enum ServerKind : byte { SynAck, Ack, FinAck, UdpReply }

    private struct ServerEvent
    {
        public long AtPs;
        public ServerKind Kind;
        public uint AckNo;
    }

    /// <summary>One stream: the client's next step and the server's queued replies.</summary>
    private sealed class Flow
    {
        public bool Udp, V6;
        public int Vlan;
        public byte[] ClientMac = [], ServerMac = [], ClientIp = [], ServerIp = [], ClientIpAtServer = [];
        public ushort ClientPort, ServerPort, IdC, IdS;
        public uint LabelC, LabelS, IsnC, IsnS, TsOffC, TsOffS, LastTsC, LastTsS, FinalAck, UdpCount;
        public int Mss, Block, Unacked;
        public long Quota, Sent, DataStartPs, DataEndPs, PsPerPacket, RttHalfPs, AckDelayPs;
        public double PsPerWireByte;
        public ClientStep Step;
        public long ClientAtPs;
        public readonly ServerEvent[] Ring = new ServerEvent[64];
        public int Head, Pending;
    }

    /// <summary>SplitMix64: a tiny PRNG whose output is fixed by its seed on every platform and runtime.</summary>
    private struct SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        public ulong Next()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public ulong Below(ulong bound) => Next() % bound;
    }
}
