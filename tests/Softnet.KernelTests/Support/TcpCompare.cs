using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Softnet.Capture;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.KernelTests.Support;

/// <summary>
/// One frame of a server device's traffic with everything that depends on random or clock values made relative:
/// sequence numbers to the sender's ISN, acknowledgements and SACK blocks to the peer's ISN, the client's TSval to
/// its SYN's, TSecr to the peer's first TSval (client SYN / server SYN-ACK), IP ID to the sender's first non-zero ID
/// of the connection (0 stays 0: ctl-socket RSTs and SYN-ACKs). <see cref="Key"/> holds all of that.
/// The server's TSval and the time it sends are clock values: the kernel's replies wait for a Python injector and
/// reader scheduled on a shared machine, so they are compared loosely: <see cref="TsSkewMs"/> is the TSval's
/// distance (relative to the SYN-ACK's) from the capture time elapsed since the SYN-ACK (0 or 1 for a sender whose
/// TSval is its ms clock), <see cref="LagMs"/> the time since the last received frame (0 for an immediate answer,
/// 40 for a delayed ACK).
/// </summary>
public sealed record TcpNormFrame(string Key, long? TsSkewMs, double? LagMs, long ClockMs = 0)
{
    public override string ToString()
        => Key + (TsSkewMs is long s ? $" tsval~clock{(s >= 0 ? "+" : "")}{s}" : "") + (LagMs is double l ? $" lag={l:0.0}ms" : "");
}

/// <summary>The TCP side of a dump, normalised (<see cref="Normalise"/>) and compared (<see cref="Diff"/>).</summary>
public static class TcpCompare
{
    /// <summary>How far a sender's TSval may be from its clock (ms granularity, and capture timestamps taken a
    /// little after the send).</summary>
    public const int TsSkewToleranceMs = 2;

    /// <summary>How far the lags of two sent frames may differ: wide enough for a loaded machine's scheduling, narrow
    /// enough to tell an immediate answer from the 40 ms delayed-ACK timer.</summary>
    public const double LagToleranceMs = 10;

    private sealed class Conn
    {
        public int Index;
        public uint ClientIsn;
        public uint? ServerIsn;
        public uint ClientTs0;
        public uint? ServerTs0;
        public int? ClientId0, ServerId0;
        public long SynAckNs;
    }

    /// <summary>The frames of DUMP/NS/DEV.rx.pcap and .tx.pcap merged in time order (received before sent at equal
    /// times: Softnet answers in the instant a segment arrives), each normalised.</summary>
    public static List<TcpNormFrame> Normalise(string dumpDir, string ns = "server", string dev = "eth0")
    {
        var all = new List<(long T, int Dir, int N, byte[] F)>();
        int n = 0;
        foreach (var (dir, name) in new[] { (0, "rx"), (1, "tx") })
        {
            string path = Path.Combine(dumpDir, ns, $"{dev}.{name}.pcap");
            if (!File.Exists(path)) continue;
            using var r = CaptureReader.Open(path);
            while (r.TryRead(out var meta, out var data)) all.Add((meta.TimestampNs, dir, n++, data.ToArray()));
        }
        all.Sort((a, b) => a.T != b.T ? a.T.CompareTo(b.T) : a.Dir != b.Dir ? a.Dir.CompareTo(b.Dir) : a.N.CompareTo(b.N));
        var conns = new Dictionary<string, Conn>();
        int count = 0;
        var res = new List<TcpNormFrame>();
        long? lastRx = null;
        foreach (var (t, dir, _, f) in all)
        {
            if (IsIcmpv6Housekeeping(f)) continue;
            res.Add(One(f, dir == 0, t, lastRx, conns, ref count));
            if (dir == 0) lastRx = t;
        }
        return res;
    }

    /// <summary>ICMPv6 stays out of the TCP timeline: the kernel's own chatter on the link (MLD reports for its
    /// addresses' solicited-node groups) is not TCP's business, and the errors a case injects (icmp6-err) show in the
    /// counters (Icmp6In*, ListenDrops) and in what the connections do next.</summary>
    private static bool IsIcmpv6Housekeeping(byte[] f)
        => f.Length >= 55 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x86DD
           && (f[20] == 58 || (f[20] == 0 && f.Length >= 62 && f[54] == 58));

    private static TcpNormFrame One(byte[] f, bool rx, long tNs, long? lastRxNs, Dictionary<string, Conn> conns, ref int count)
    {
        string d = rx ? "rx" : "tx";
        ushort ethertype = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12));
        bool v6 = ethertype == 0x86DD && f.Length >= 54 && (f[14] >> 4) == 6;
        if (!v6 && (f.Length < 34 || ethertype != 0x0800 || (f[14] >> 4) != 4))
            return new($"{d} ethertype 0x{ethertype:x4} len {f.Length}", null, null);
        int ihl, ipLen, l4;
        byte proto;
        string s, t, ipText;
        ushort id = 0;
        byte[] src, dst;
        if (v6)
        {
            ihl = 40;
            ipLen = 40 + BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(18));
            proto = f[20];
            src = f.AsSpan(22, 16).ToArray();
            dst = f.AsSpan(38, 16).ToArray();
            s = $"[{new System.Net.IPAddress(src)}]";
            t = $"[{new System.Net.IPAddress(dst)}]";
            uint vtf = BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(14));
            ipText = $" ip6(tc={(vtf >> 20) & 0xFF} fl={vtf & 0xFFFFF} hlim={f[21]})";
        }
        else
        {
            ihl = (f[14] & 15) * 4;
            ipLen = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16));
            proto = f[23];
            id = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(18));
            src = f.AsSpan(26, 4).ToArray();
            dst = f.AsSpan(30, 4).ToArray();
            s = string.Join('.', src);
            t = string.Join('.', dst);
            ipText = $" ip(tos={f[15]}{((f[20] & 0x40) != 0 ? " df" : "")} ttl={f[22]} id=";
        }
        l4 = 14 + ihl;
        if (proto != 6 || f.Length < l4 + 20)
            return new($"{d} {s} > {t} proto {proto} len {ipLen}", null, null);
        var tcp = f.AsSpan(l4, Math.Min(ipLen, f.Length - 14) - ihl);
        ushort sport = BinaryPrimitives.ReadUInt16BigEndian(tcp), dport = BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]);
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]), ack = BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]);
        int doff = (tcp[12] >> 4) * 4;
        byte flags = tcp[13];
        ushort win = BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]);
        bool csumOk = Checksum.Verify(tcp, v6 ? Checksum.PseudoHeaderV6(src, dst, 6, tcp.Length) : Checksum.PseudoHeaderV4(src, dst, 6, tcp.Length));
        int len = tcp.Length - doff;

        // The connection is named from the client's side: rx frames come from the client.
        string flow = rx ? $"{s}:{sport}>{dport}" : $"{t}:{dport}>{sport}";
        bool syn = (flags & 0x12) == 0x02;
        if (rx && syn && (!conns.TryGetValue(flow, out var old) || old.ClientIsn != seq))
            conns[flow] = new Conn { Index = ++count, ClientIsn = seq, ClientTs0 = FindTs(tcp, doff)?.Val ?? 0 };
        conns.TryGetValue(flow, out var c);
        if (c != null && !rx && (flags & 0x12) == 0x12 && c.ServerIsn == null)
        {
            c.ServerIsn = seq;
            c.ServerTs0 = FindTs(tcp, doff)?.Val;
            c.SynAckNs = tNs;
        }

        var sb = new StringBuilder();
        sb.Append(d).Append(' ').Append(flow).Append(c != null ? $" #{c.Index}" : " #-").Append(' ').Append(FlagText(flags));
        uint? seqBase = rx ? c?.ClientIsn : c?.ServerIsn;
        uint? ackBase = rx ? c?.ServerIsn : c?.ClientIsn;
        sb.Append(" seq=").Append(Rel(seq, seqBase));
        if ((flags & 0x10) != 0 || ack != 0) sb.Append(" ack=").Append(Rel(ack, ackBase));
        sb.Append(" win=").Append(win).Append(" len=").Append(len);
        if (!csumOk) sb.Append(" BADCSUM");
        sb.Append(ipText);
        if (v6) { }
        else if (id == 0) sb.Append('0');
        else if (c == null) sb.Append('#').Append(id);
        else
        {
            ref int? id0 = ref rx ? ref c.ClientId0 : ref c.ServerId0;
            id0 ??= id;
            sb.Append('+').Append((ushort)(id - id0.Value));
        }
        if (!v6) sb.Append(')');
        long? tsSkew = null;
        long clockMs = 0;
        var opts = new List<string>();
        int i = 20;
        while (i < doff)
        {
            byte k = tcp[i];
            if (k == 0) { opts.Add("eol"); break; }
            if (k == 1) { opts.Add("nop"); i++; continue; }
            if (i + 1 >= doff || tcp[i + 1] < 2 || i + tcp[i + 1] > doff) { opts.Add("bad"); break; }
            int l = tcp[i + 1];
            var v = tcp.Slice(i + 2, l - 2);
            switch (k)
            {
                case 2 when l == 4: opts.Add($"mss {BinaryPrimitives.ReadUInt16BigEndian(v)}"); break;
                case 3 when l == 3: opts.Add($"ws {v[0]}"); break;
                case 4 when l == 2: opts.Add("sackok"); break;
                case 8 when l == 10:
                {
                    uint val = BinaryPrimitives.ReadUInt32BigEndian(v), ecr = BinaryPrimitives.ReadUInt32BigEndian(v[4..]);
                    uint? valBase = rx ? c?.ClientTs0 : c?.ServerTs0;
                    uint? ecrBase = rx ? c?.ServerTs0 : c?.ClientTs0;
                    string ecrText = (flags & 0x10) == 0 && ecr == 0 ? "0" : Rel(ecr, ecrBase);
                    if (rx || valBase == null) opts.Add($"ts {Rel(val, valBase)}/{ecrText}");
                    else
                    {
                        opts.Add($"ts */{ecrText}");
                        long elapsedMs = (tNs - c!.SynAckNs) / 1_000_000;
                        clockMs = elapsedMs;
                        tsSkew = (int)(val - valBase.Value) - elapsedMs;
                    }
                    break;
                }
                case 5 when (l - 2) % 8 == 0:
                {
                    var blocks = new List<string>();
                    for (int j = 0; j < l - 2; j += 8)
                        blocks.Add($"{Rel(BinaryPrimitives.ReadUInt32BigEndian(v[j..]), ackBase)}-{Rel(BinaryPrimitives.ReadUInt32BigEndian(v[(j + 4)..]), ackBase)}");
                    opts.Add("sack " + string.Join(' ', blocks));
                    break;
                }
                default: opts.Add($"opt{k}:{Convert.ToHexString(v)}"); break;
            }
            i += l;
        }
        if (opts.Count > 0) sb.Append(" [").Append(string.Join(", ", opts)).Append(']');
        double? lag = rx || lastRxNs == null ? null : (tNs - lastRxNs.Value) / 1e6;
        return new(sb.ToString(), tsSkew, lag, clockMs);
    }

    private static (uint Val, uint Ecr)? FindTs(ReadOnlySpan<byte> tcp, int doff)
    {
        int i = 20;
        while (i < doff)
        {
            if (tcp[i] == 0) break;
            if (tcp[i] == 1) { i++; continue; }
            if (i + 1 >= doff || tcp[i + 1] < 2) break;
            if (tcp[i] == 8 && tcp[i + 1] == 10 && i + 10 <= doff)
                return (BinaryPrimitives.ReadUInt32BigEndian(tcp[(i + 2)..]), BinaryPrimitives.ReadUInt32BigEndian(tcp[(i + 6)..]));
            i += tcp[i + 1];
        }
        return null;
    }

    /// <summary>Relative to <paramref name="b"/> as a signed 32-bit distance; the raw value (#N) without a base.</summary>
    private static string Rel(uint v, uint? b) => b is uint x ? ((int)(v - x)).ToString(CultureInfo.InvariantCulture) : $"#{v}";

    private static string FlagText(byte f)
    {
        var sb = new StringBuilder();
        foreach (var (bit, ch) in new[] { (0x80, 'C'), (0x40, 'E'), (0x20, 'U'), (0x10, 'A'), (0x08, 'P'), (0x04, 'R'), (0x02, 'S'), (0x01, 'F') })
            if ((f & bit) != 0) sb.Append(ch);
        return sb.Length == 0 ? "." : sb.ToString();
    }

    /// <summary>True when two normalised frames agree: same key, both TSvals on their senders' clocks, lags within
    /// <see cref="LagToleranceMs"/>.</summary>
    public static bool Same(TcpNormFrame a, TcpNormFrame b)
        => a.Key == b.Key && OnClock(a) && OnClock(b) && (a.LagMs == null) == (b.LagMs == null)
           && (a.LagMs == null || Math.Abs(a.LagMs.Value - b.LagMs!.Value) <= LagTolerance(Math.Max(a.LagMs.Value, b.LagMs!.Value)));

    /// <summary><see cref="LagToleranceMs"/>, or for a long timer the kernel's timer wheel slack: past level 0 (64
    /// jiffies, 256 ms at HZ=250) a timer fires at its level's next bucket boundary, up to an eighth of its timeout
    /// late (the SYN-ACK's 1 s, a backed-off RTO).</summary>
    public static double LagTolerance(double lagMs) => Math.Max(LagToleranceMs, lagMs / 8 + 4);

    /// <summary>The TSval is on its sender's clock: within <see cref="TsSkewToleranceMs"/>, plus 1% of the time since the
    /// SYN-ACK anchored it (the kernel's millisecond clock and the capture's timestamps drift apart by a few ms per
    /// second on this virtual machine).</summary>
    private static bool OnClock(TcpNormFrame f) => f.TsSkewMs == null || Math.Abs(f.TsSkewMs.Value) <= TsSkewToleranceMs + f.ClockMs / 100;

    /// <summary>The differences between two dumps' TCP views: frames (in order), sockets.txt (exact) and the
    /// Tcp*/TcpExt* counters <paramref name="counterSource"/>'s nstat.txt lists (Softnet prints only what it models;
    /// for a kernel-vs-kernel run pass the first dump: all of them). Empty when they agree.</summary>
    /// <param name="prefixes">The counters compared: names starting with one of these (Tcp: Tcp and TcpExt).</param>
    public static List<string> Diff(string expectedDir, string actualDir, string? counterSource = null, string ns = "server", string dev = "eth0",
        string[]? prefixes = null)
    {
        var diffs = new List<string>();
        var e = Normalise(expectedDir, ns, dev);
        var a = Normalise(actualDir, ns, dev);
        int first = -1;
        for (int k = 0; k < Math.Max(e.Count, a.Count); k++)
            if (k >= e.Count || k >= a.Count || !Same(e[k], a[k])) { first = k; break; }
        if (first >= 0)
        {
            var sb = new StringBuilder($"{dev}: frames differ from #{first} on ({e.Count} expected, {a.Count} actual):\n");
            for (int k = Math.Max(0, first - 3); k < Math.Min(Math.Max(e.Count, a.Count), first + 12); k++)
            {
                string x = k < e.Count ? e[k].ToString() : "(none)";
                string y = k < a.Count ? a[k].ToString() : "(none)";
                bool same = k < e.Count && k < a.Count && Same(e[k], a[k]);
                sb.Append(same ? "    " : "  - ").Append(k).Append(' ').Append(x).Append('\n');
                if (!same) sb.Append("  + ").Append(k).Append(' ').Append(y).Append('\n');
            }
            diffs.Add(sb.ToString());
        }
        string es = ReadOr(Path.Combine(expectedDir, ns, "sockets.txt")), @as = ReadOr(Path.Combine(actualDir, ns, "sockets.txt"));
        if (es != @as) diffs.Add($"sockets.txt differs:\n--- expected\n{es}--- actual\n{@as}");
        var ec = WithoutMulticastOut(SnmpMib.ParseNstat(ReadOr(Path.Combine(expectedDir, ns, "nstat.txt"))));
        var ac = WithoutMulticastOut(SnmpMib.ParseNstat(ReadOr(Path.Combine(actualDir, ns, "nstat.txt"))));
        var src = SnmpMib.ParseNstat(ReadOr(Path.Combine(counterSource ?? actualDir, ns, "nstat.txt")));
        var bad = src.Keys.Where(k => (prefixes ?? ["Tcp"]).Any(p => k.StartsWith(p, StringComparison.Ordinal)))
            .Where(k => ec.GetValueOrDefault(k) != ac.GetValueOrDefault(k))
            .Select(k => $"  {k}: expected {ec.GetValueOrDefault(k)}, actual {ac.GetValueOrDefault(k)}").ToList();
        if (bad.Count > 0) diffs.Add("nstat.txt differs:\n" + string.Join('\n', bad));
        return diffs;
    }

    /// <summary>The Ip6 output counters less multicast output: a kernel IPv6 host sends MLD reports for its addresses'
    /// solicited-node groups when the scenario is built, before the capture, and TCP never sends multicast, so
    /// Ip6OutRequests, Ip6OutTransmits and Ip6OutOctets are compared for unicast alone (the Mcast ones not at all).</summary>
    private static Dictionary<string, long> WithoutMulticastOut(Dictionary<string, long> c)
    {
        long pkts = c.GetValueOrDefault("Ip6OutMcastPkts"), octets = c.GetValueOrDefault("Ip6OutMcastOctets");
        foreach (var k in new[] { "Ip6OutRequests", "Ip6OutTransmits" })
            if (c.ContainsKey(k)) c[k] -= pkts;
        if (c.ContainsKey("Ip6OutOctets")) c["Ip6OutOctets"] -= octets;
        c.Remove("Ip6OutMcastPkts");
        c.Remove("Ip6OutMcastOctets");
        return c;
    }

    /// <summary>Writes the normalised timeline of a dump beside it (DUMP/NS/DEV.tcp.txt) for reading and diffing.</summary>
    public static string WriteTimeline(string dumpDir, string ns = "server", string dev = "eth0")
    {
        string path = Path.Combine(dumpDir, ns, $"{dev}.tcp.txt");
        File.WriteAllLines(path, Normalise(dumpDir, ns, dev).Select((x, k) => $"{k,4} {x}"));
        return path;
    }

    private static string ReadOr(string path) => File.Exists(path) ? File.ReadAllText(path) : "";
}
