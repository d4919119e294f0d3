using System.Buffers.Binary;
using Softnet.KernelTests.Support;
using Softnet.Netfilter;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;
using Xunit;

namespace Softnet.KernelTests.Netfilter;

/// <summary>
/// The v6-fw scenario's traffic through the real kernel router (ip6tables, IPv6 conntrack, NAT66, REJECT) and through
/// Softnet's IPv6 netfilter driven hook by hook as ip6_rcv_finish / ip6_forward / ip6_output / ip6_local_out would (the
/// route decided from the destination after PREROUTING; the router's own packets — REJECT answers, echo replies — run
/// OUTPUT and POSTROUTING). `conntrack -L -f ipv6` and the ip6tables counters must agree. The whole-path comparison
/// (frames out of every device) waits for the IPv6 L3 path: this one needs only netfilter.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class V6FwKernelTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const byte Syn = TcpFlags.Syn, Ack = TcpFlags.Ack;

    private static string Dir => Path.Combine(AppContext.BaseDirectory, "Scenarios", "v6-fw");

    private static readonly UInt128 FwLan = A(ScenarioTrafficV6.FwLan), FwWan = A(ScenarioTrafficV6.FwWan);
    private static readonly UInt128 LanNet = A("2001:db8:1::"), LanMask = Ip6Addr.Mask(64);

    private static UInt128 A(string s) => Ip6Addr.TryParse(s, out var a) ? a : throw new FormatException(s);

    /// <summary>The route lookup of the router: the LAN prefix on lan0, everything else by the default route on wan0.</summary>
    private static string OutDev(UInt128 dst) => (dst & LanMask) == LanNet ? "lan0" : "wan0";

    private static bool Local(UInt128 dst) => dst == FwLan || dst == FwWan;

    /// <summary>What the router sent, per output device, as IPv6 packets (forwarded, rewritten, hop limit decremented;
    /// REJECT answers; echo replies), in order.</summary>
    private static readonly Dictionary<string, List<byte[]>> Sent = [];

    private static void Send(string dev, byte[] pkt)
    {
        if (!Sent.TryGetValue(dev, out var list)) Sent[dev] = list = [];
        list.Add(pkt);
    }

    /// <summary>Runs the capture through the router's IPv6 hooks; returns its tables (and fills <see cref="Sent"/>).</summary>
    private static NetfilterTables Simulate(ScenarioCapture capture)
    {
        Sent.Clear();
        var t = IptablesSaveParser.ParseFile(Path.Combine(Dir, "ns", "fw", "ip6tables.save"), NetfilterTables.CreateIpv6());
        t.ConntrackEnabled = true;
        t.Host6 = new SimpleHost6().Add("lan0", "2001:db8:1::1/64").Add("wan0", "2001:db8:ff::1/64");
        long now = 0;
        for (int i = 0; i < capture.FrameList.Count; i++)
        {
            var (iface, frame, _) = capture.FrameList[i];
            // The injector's pace (KernelScenario.GapMs) and the capture's pauses.
            now += KernelScenario.GapMs * 1_000_000L + capture.PauseBefore(i) * 1_000_000L;
            string inDev = capture.Devices[iface];
            var pkt = frame.AsSpan(14).ToArray();
            Assert.True(PacketContext.FromIpv6(pkt, pkt.Length, out var ctx, out var why), why.ToString());
            ctx.TimestampNs = now;
            ctx.InInterface = inDev;
            if (t.Hook(HookPoint.PreRouting, ref ctx, pkt) == Verdict.Drop) { Reject(t, ref ctx, pkt, now); continue; }
            if (Local(ctx.Dst6))
            {
                if (t.Hook(HookPoint.LocalIn, ref ctx, pkt) == Verdict.Drop) { Reject(t, ref ctx, pkt, now); continue; }
                // icmpv6_echo_reply: the router answers echo requests addressed to it.
                if (ctx.Protocol == 58 && ctx.IcmpType == 128) LocalOut(t, EchoReply(pkt), null, CtInfo.None, now);
                continue;
            }
            ctx.OutInterface = OutDev(ctx.Dst6);
            // ip6_forward decrements the hop limit before NF_INET_FORWARD; a REJECT there quotes the packet so.
            pkt[7]--;
            if (t.Hook(HookPoint.Forward, ref ctx, pkt) == Verdict.Drop) { Reject(t, ref ctx, pkt, now); continue; }
            if (t.Hook(HookPoint.PostRouting, ref ctx, pkt) == Verdict.Accept) Send(ctx.OutInterface!, pkt);
        }
        return t;
    }

    /// <summary>ip6_local_out: OUTPUT then POSTROUTING, with the entry nf_ct_attach gave the packet (if any).</summary>
    private static void LocalOut(NetfilterTables t, byte[] pkt, Connection? ct, CtInfo info, long now)
    {
        Assert.True(PacketContext.FromIpv6(pkt, pkt.Length, out var ctx, out _));
        ctx.TimestampNs = now;
        ctx.Ct = ct;
        ctx.CtInfo = ct == null ? CtInfo.None : info;
        ctx.OutInterface = OutDev(ctx.Dst6);
        if (t.Hook(HookPoint.LocalOut, ref ctx, pkt) == Verdict.Drop) return;
        if (t.Hook(HookPoint.PostRouting, ref ctx, pkt) == Verdict.Accept) Send(ctx.OutInterface!, pkt);
    }

    /// <summary>The REJECT answer, as Nf6Reject.Send builds it, through the router's output hooks.</summary>
    private static void Reject(NetfilterTables t, ref PacketContext ctx, byte[] pkt, long now)
    {
        if (ctx.Reject == RejectWith.None) return;
        if (ctx.Reject == RejectWith.TcpReset)
        {
            var rst = new byte[Nf6Reject.TcpResetLength];
            if (!Nf6Reject.WriteTcpReset(rst, pkt, verified: false)) return;
            var info = ctx.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply ? CtInfo.Related : CtInfo.RelatedReply;
            LocalOut(t, rst, ctx.Ct, info, now);
            return;
        }
        // nf_send_unreach6 as Nf6Reject.Send calls it (the packet came in on the device of the route back).
        var err = new byte[Nf6Reject.MinMtu];
        int n = Nf6Reject.WriteUnreach(err, pkt, verified: false, ctx.Reject, t.Host6, OutDev(Ip6Addr.Read(pkt.AsSpan(8))));
        if (n > 0) LocalOut(t, err[..n], null, CtInfo.None, now);
    }

    private static byte[] EchoReply(byte[] req)
    {
        var r = (byte[])req.Clone();
        req.AsSpan(8, 16).CopyTo(r.AsSpan(24));
        req.AsSpan(24, 16).CopyTo(r.AsSpan(8));
        r[7] = 64;
        r[40] = 129;
        BinaryPrimitives.WriteUInt16BigEndian(r.AsSpan(42), 0);
        var l4 = r.AsSpan(40);
        BinaryPrimitives.WriteUInt16BigEndian(r.AsSpan(42), Checksum.Compute(l4, Checksum.PseudoHeaderV6(r.AsSpan(8, 16), r.AsSpan(24, 16), 58, l4.Length)));
        return r;
    }

    /// <summary>`conntrack -L` lines with the timeout (wall-clock in the kernel) left out, sorted.</summary>
    private static List<string> Entries(string text)
        => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l =>
        {
            var tok = l.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
            tok.RemoveAt(2);
            return string.Join(' ', tok);
        }).Order(StringComparer.Ordinal).ToList();

    /// <summary>The IPv6 packets of a device's tx capture, without Ethernet, MLD reports and dones left out.</summary>
    private static List<byte[]> KernelSent(string pcap)
    {
        var list = new List<byte[]>();
        using var r = Softnet.Capture.CaptureReader.Open(pcap);
        while (r.TryRead(out _, out var frame))
        {
            if (frame.Length < 54 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != 0x86DD) continue;
            var ip = frame[14..].ToArray();
            // MLDv2 reports carry a hop-by-hop header (router alert) before the ICMPv6 message.
            int at = 40;
            byte nh = ip[6];
            if (nh == 0 && ip.Length > 48) { nh = ip[40]; at = 40 + (ip[41] + 1) * 8; }
            if (nh == 58 && at < ip.Length && ip[at] is 143 or 131 or 132) continue;
            list.Add(ip);
        }
        return list;
    }

    /// <summary>Each entry's remaining seconds, by its line without them.</summary>
    private static Dictionary<string, long> Timeouts(string text)
        => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToDictionary(l =>
        {
            var tok = l.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
            tok.RemoveAt(2);
            return string.Join(' ', tok);
        }, l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2], System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>ip6tables-save -c without comments and without the filter OUTPUT policy counters (the kernel router's
    /// own MLD reports pass there, which Softnet's hooks do not send).</summary>
    private static string Counters(string save)
        => string.Join('\n', save.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.StartsWith(":OUTPUT ACCEPT [", StringComparison.Ordinal) ? ":OUTPUT ACCEPT [-]" : l)) + "\n";

    [SkippableFact]
    public void Conntrack_and_counters_match_the_kernel_router()
    {
        string? why = KernelScenario.Unavailable() ?? Netns.Unavailable("ip6tables-restore", "ip6tables-save");
        Skip.If(why != null, why);
        var capture = ScenarioTrafficV6.V6Fw();
        string work = Directory.CreateTempSubdirectory("softnet-v6fw-").FullName;
        try
        {
            string pcap = Path.Combine(work, "v6-fw.pcapng");
            capture.Write(pcap);
            string outDir = Path.Combine(work, "kernel");
            KernelScenario.Run(Dir, pcap, ScenarioTrafficV6.InjectNamespace("v6-fw"), outDir);
            string kernelCt = File.ReadAllText(Path.Combine(outDir, "fw", "conntrack6.txt"));
            string kernelSave = File.ReadAllText(Path.Combine(outDir, "fw", "ip6tables-save.txt"));

            output.WriteLine(kernelCt);
            output.WriteLine(kernelSave);
            var t = Simulate(capture);
            long end = Enumerable.Range(0, capture.FrameList.Count).Sum(i => KernelScenario.GapMs * 1_000_000L + capture.PauseBefore(i) * 1_000_000L);
            Assert.Equal(string.Join("\n", Entries(kernelCt)), string.Join("\n", Entries(t.Conntrack6.List(end))));
            // The timeouts too, within the seconds the kernel run took.
            var kt = Timeouts(kernelCt);
            foreach (var (entry, secs) in Timeouts(t.Conntrack6.List(end)))
                Assert.InRange(kt[entry] - secs, -3, 1);

            var saved = new System.Text.StringBuilder();
            foreach (var line in kernelSave.Split('\n'))
                if (line.StartsWith('*') && TableNames.TryParse(line[1..].Trim(), out var kind))
                    IptablesSave.WriteTable(saved, t[kind]!, counters: true);
            Assert.Equal(Counters(kernelSave), Counters(saved.ToString()));

            // Frame by frame, the IPv6 packets the router sent on each link (its MLD reports aside: Softnet's hooks do not
            // make them), bytes and checksums as the kernel wrote them.
            foreach (var dev in new[] { "lan0", "wan0" })
            {
                var kernel = KernelSent(Path.Combine(outDir, "fw", dev + ".tx.pcap"));
                var ours = Sent.GetValueOrDefault(dev) ?? [];
                output.WriteLine($"{dev}: kernel sent {kernel.Count} IPv6 packets (MLD aside), Softnet {ours.Count}");
                Assert.True(kernel.Count == ours.Count, $"{dev}: kernel sent {kernel.Count}, Softnet {ours.Count}:\n"
                    + string.Join("\n", kernel.Select(k => " kernel " + Convert.ToHexString(k.AsSpan(0, Math.Min(k.Length, 64)))))
                    + "\n" + string.Join("\n", ours.Select(k => " ours   " + Convert.ToHexString(k.AsSpan(0, Math.Min(k.Length, 64))))));
                for (int i = 0; i < kernel.Count; i++)
                    Assert.True(kernel[i].AsSpan().SequenceEqual(ours[i]), $"{dev} packet {i}:\n kernel {Convert.ToHexString(kernel[i])}\n ours   {Convert.ToHexString(ours[i])}");
            }

            // The kernel's save, counters and all, parses back through our parser to the same text.
            var back = IptablesSaveParser.Parse(kernelSave, "ip6tables-save.txt", NetfilterTables.CreateIpv6());
            var again = new System.Text.StringBuilder();
            foreach (var line in kernelSave.Split('\n'))
                if (line.StartsWith('*') && TableNames.TryParse(line[1..].Trim(), out var kind))
                    IptablesSave.WriteTable(again, back[kind]!, counters: true);
            Assert.Equal(string.Join('\n', kernelSave.Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#'))),
                string.Join('\n', again.ToString().Split('\n').Where(l => l.Length > 0 && !l.StartsWith('#'))));
        }
        finally
        {
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }
}
