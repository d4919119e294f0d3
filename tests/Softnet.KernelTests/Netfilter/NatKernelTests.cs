using System.Text.RegularExpressions;
using Softnet.KernelTests.Support;
using Softnet.Netfilter;
using Softnet.Packets;
using Xunit;

namespace Softnet.KernelTests.Netfilter;

/// <summary>
/// NAT's choices against the kernel's: the same locally sent UDP datagrams through the same SNAT rules, in a
/// namespace and through <see cref="NetfilterTables"/>, and every connection's mapped source address and port
/// compared (conntrack -L's tuples). Covers find_best_ips_proto's address in a range (jhash2 of the source, keyed by
/// the destination), find_appropriate_src reusing a source's earlier mapping past newer bindings of other ranges and
/// null bindings, a source port kept when free, and DNAT to an address and port range (the first free port).
/// </summary>
[Trait("Category", "Kernel")]
public sealed partial class NatKernelTests
{
    private const string Rules = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A OUTPUT -d 192.0.2.99/32 -p udp -j DNAT --to-destination 198.18.0.1-198.18.0.50:6000-6003
        -A OUTPUT -d 192.0.2.97/32 -p udp -j DNAT --to-destination 198.18.0.7:6000-6003
        -A OUTPUT -d 192.0.2.98/32 -p udp -j DNAT --to-destination 198.18.0.7:6000-6003
        -A POSTROUTING -d 192.0.2.0/24 -p udp -j SNAT --to-source 198.51.100.1-198.51.100.200
        -A POSTROUTING -d 203.0.113.0/24 -p udp -j SNAT --to-source 198.51.100.250
        COMMIT

        """;

    /// <summary>(source, source port, destination) in sending order: per source, a first range binding, a binding of
    /// the other range, a null binding, then more destinations of the first range.</summary>
    private static List<(string Src, ushort Port, string Dst)> Datagrams()
    {
        var list = new List<(string, ushort, string)>();
        for (int s = 5; s <= 9; s++)
        {
            string src = $"10.0.0.{s}";
            ushort port = (ushort)(40000 + s);
            list.Add((src, port, $"192.0.2.{s}"));
            list.Add((src, port, "203.0.113.1"));
            list.Add((src, port, "172.16.0.1"));
            for (int h = 20; h < 24; h++) list.Add((src, port, $"192.0.2.{h}"));
            // A second port from the same address: its own first choice.
            list.Add((src, (ushort)(port + 100), $"192.0.2.{s + 50}"));
            // DNAT to an address and port range: the address by jhash2, the port from the start of the range.
            for (int k = 0; k < 3; k++) list.Add((src, (ushort)(port + 200 + k), "192.0.2.99"));
            // One socket to two services DNATed to the same endpoint: the second reply tuple would clash, so its port
            // moves to the next free one of the range (nf_nat_l4proto_unique_tuple from offset 0 for DNAT).
            list.Add((src, (ushort)(port + 300), "192.0.2.97"));
            list.Add((src, (ushort)(port + 300), "192.0.2.98"));
        }
        return list;
    }

    [GeneratedRegex(@"^udp\s+17\s+\d+\s+src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) (?:zone-orig=\d+ )?(?:\[UNREPLIED\] )?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")]
    private static partial Regex ConntrackUdp();

    /// <summary>The same rules with conntrack zones in front: zone 7 for both directions of two sources, zone 9 for
    /// the original direction only of another. The zone id seeds find_best_ips_proto's hash and keys the bysource
    /// chain; find_appropriate_src compares the zones entries give their original direction.</summary>
    private const string ZoneRules = """
        *raw
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A OUTPUT -s 10.0.0.8/31 -j CT --zone 7
        -A OUTPUT -s 10.0.0.6/32 -j CT --zone-orig 9
        COMMIT

        """;

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Snat_address_choice_and_source_reuse_match_the_kernel(bool zones)
    {
        string? why = Netns.Unavailable("iptables-restore", "conntrack", "python3");
        Skip.If(why != null, why);
        string all = zones ? ZoneRules + Rules : Rules;

        var sent = Datagrams();
        var kernel = new SortedSet<string>(StringComparer.Ordinal);
        using (var ns = Netns.Create("sn-nat"))
        {
            ns.Check("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1");
            ns.Check("ip", "link", "set", "v0", "up");
            ns.Check("ip", "link", "set", "v1", "up");
            ns.Check("ip", "addr", "add", "10.0.0.1/24", "dev", "v0");
            foreach (var src in sent.Select(d => d.Src).Distinct()) ns.Check("ip", "addr", "add", src + "/24", "dev", "v0");
            foreach (var net in new[] { "192.0.2.0/24", "203.0.113.0/24", "172.16.0.0/24", "198.18.0.0/24" })
                ns.Check("ip", "route", "add", net, "via", "10.0.0.2", "dev", "v0");
            ns.Check("ip", "neigh", "add", "10.0.0.2", "lladdr", "02:00:00:00:00:09", "dev", "v0", "nud", "permanent");
            string rules = Path.Combine(Path.GetTempPath(), $"{ns.Name}.rules");
            File.WriteAllText(rules, all);
            try { ns.Check("iptables-restore", rules); }
            finally { File.Delete(rules); }
            string script = "import socket\nsocks = {}\n" + string.Concat(sent.Select(d =>
                $"k = socks.get(('{d.Src}', {d.Port}))\n" +
                $"if k is None:\n    k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); k.bind(('{d.Src}', {d.Port})); socks[('{d.Src}', {d.Port})] = k\n" +
                $"k.sendto(b'x', ('{d.Dst}', 53))\n"));
            ns.Check("python3", "-c", script);
            foreach (var line in ns.Check("conntrack", "-L", "-p", "udp").Split('\n'))
            {
                var m = ConntrackUdp().Match(line.Trim());
                if (m.Success) kernel.Add($"{m.Groups[1]}:{m.Groups[3]} -> {m.Groups[2]}:{m.Groups[4]} | reply {m.Groups[5]}:{m.Groups[7]} -> {m.Groups[6]}:{m.Groups[8]}");
            }
        }
        Assert.Equal(sent.Count, kernel.Count);

        // The same datagrams through Softnet's OUTPUT and POSTROUTING hooks.
        var t = IptablesSaveParser.Parse(all);
        var softnet = new SortedSet<string>(StringComparer.Ordinal);
        long now = 1_000_000_000;
        foreach (var (src, port, dst) in sent)
        {
            var pkt = Frames.Udp(src, port, dst, 53, payload: 1);
            Assert.True(PacketContext.FromIpv4(pkt, pkt.Length, out var ctx, out _));
            ctx.TimestampNs = now += 1000;
            ctx.OutInterface = "v0";
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.LocalOut, ref ctx, pkt));
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PostRouting, ref ctx, pkt));
            var ct = ctx.Ct!;
            softnet.Add($"{Ipv4.Format(ct.Original.Src)}:{ct.Original.SrcPort} -> {Ipv4.Format(ct.Original.Dst)}:{ct.Original.DstPort} | " +
                $"reply {Ipv4.Format(ct.Reply.Src)}:{ct.Reply.SrcPort} -> {Ipv4.Format(ct.Reply.Dst)}:{ct.Reply.DstPort}");
        }
        Assert.Equal(string.Join('\n', kernel), string.Join('\n', softnet));
        // The clash case did move a port.
        Assert.Contains(kernel, l => l.Contains("reply 198.18.0.7:6001 ", StringComparison.Ordinal));
    }

    /// <summary>MASQUERADE on a device with two subnets: the address on the next hop's subnet (inet_select_addr), not
    /// the device's first; a destination reached directly takes the address of its own subnet.</summary>
    [SkippableFact]
    public void Masquerade_picks_the_address_on_the_next_hops_subnet_as_the_kernel_does()
    {
        string? why = Netns.Unavailable("iptables-restore", "conntrack", "python3");
        Skip.If(why != null, why);
        const string masq = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" +
            "-A POSTROUTING -o v0 -p udp -j MASQUERADE\nCOMMIT\n";
        // (source, destination, the route's next hop)
        var sent = new (string Src, string Dst, string Nexthop)[]
        {
            ("10.9.9.9", "203.0.113.1", "10.1.0.2"),   // via the second subnet's gateway
            ("10.9.9.9", "198.18.0.1", "10.0.0.2"),    // via the first subnet's gateway
            ("10.9.9.9", "10.1.0.77", "10.1.0.77"),    // on-link in the second subnet
        };
        var kernel = new SortedSet<string>(StringComparer.Ordinal);
        using (var ns = Netns.Create("sn-masq"))
        {
            ns.Check("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1");
            ns.Check("ip", "link", "set", "v0", "up");
            ns.Check("ip", "link", "set", "v1", "up");
            ns.Check("ip", "addr", "add", "10.0.0.1/24", "dev", "v0");
            ns.Check("ip", "addr", "add", "10.1.0.1/24", "dev", "v0");
            ns.Check("ip", "addr", "add", "10.9.9.9/32", "dev", "v1");
            ns.Check("ip", "route", "add", "203.0.113.0/24", "via", "10.1.0.2", "dev", "v0");
            ns.Check("ip", "route", "add", "198.18.0.0/24", "via", "10.0.0.2", "dev", "v0");
            foreach (var gw in new[] { "10.0.0.2", "10.1.0.2", "10.1.0.77" })
                ns.Check("ip", "neigh", "add", gw, "lladdr", "02:00:00:00:00:09", "dev", "v0", "nud", "permanent");
            string rules = Path.Combine(Path.GetTempPath(), $"{ns.Name}.rules");
            File.WriteAllText(rules, masq);
            try { ns.Check("iptables-restore", rules); }
            finally { File.Delete(rules); }
            ns.Check("python3", "-c", "import socket\n" + string.Concat(sent.Select((d, i) =>
                $"k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); k.bind(('{d.Src}', {41000 + i})); k.sendto(b'x', ('{d.Dst}', 53))\n")));
            foreach (var line in ns.Check("conntrack", "-L", "-p", "udp").Split('\n'))
            {
                var m = ConntrackUdp().Match(line.Trim());
                if (m.Success) kernel.Add($"{m.Groups[1]}:{m.Groups[3]} -> {m.Groups[2]}:{m.Groups[4]} | reply {m.Groups[5]}:{m.Groups[7]} -> {m.Groups[6]}:{m.Groups[8]}");
            }
        }
        Assert.Equal(sent.Length, kernel.Count);

        var t = IptablesSaveParser.Parse(masq);
        t.Host = new SimpleHost().Add("v0", "10.0.0.1/24").Add("v0", "10.1.0.1/24").Add("v1", "10.9.9.9/32");
        var softnet = new SortedSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < sent.Length; i++)
        {
            var (src, dst, nexthop) = sent[i];
            var pkt = Frames.Udp(src, (ushort)(41000 + i), dst, 53, payload: 1);
            Assert.True(PacketContext.FromIpv4(pkt, pkt.Length, out var ctx, out _));
            ctx.TimestampNs = 1_000_000_000 + i;
            ctx.OutInterface = "v0";
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.LocalOut, ref ctx, pkt));
            // What Ipv4Output.Output sets before POSTROUTING: the route's next hop.
            ctx.Nexthop = Ipv4.Parse(nexthop);
            var ct = ctx.Ct!;
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PostRouting, ref ctx, pkt));
            softnet.Add($"{Ipv4.Format(ct.Original.Src)}:{ct.Original.SrcPort} -> {Ipv4.Format(ct.Original.Dst)}:{ct.Original.DstPort} | " +
                $"reply {Ipv4.Format(ct.Reply.Src)}:{ct.Reply.SrcPort} -> {Ipv4.Format(ct.Reply.Dst)}:{ct.Reply.DstPort}");
        }
        Assert.Equal(string.Join('\n', kernel), string.Join('\n', softnet));
        Assert.Contains(kernel, l => l.EndsWith("-> 10.1.0.1:41000", StringComparison.Ordinal));
    }
}
