using Softnet.Capture;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Topology;
using Xunit;

namespace Softnet.Tests.Ip;

/// <summary>IPv6 bring-up (addrconf, mcast, ndisc) under the sysctls that shape it; Ipv6BringUpKernelTests compares the
/// same settings with the kernel.</summary>
public sealed class Ipv6AddrconfTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"softnet-v6up-{Environment.ProcessId}-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    private sealed class Tap : ICaptureWriter
    {
        public readonly List<(long Ns, byte[] Frame)> Frames = new();
        public void Write(long timestampNs, ReadOnlySpan<byte> frame, int originalLength = -1, int interfaceId = 0) => Frames.Add((timestampNs, frame.ToArray()));
        public void Flush() { }
        public void Dispose() { }
    }

    /// <summary>eth0 of namespace a (MAC 02:00:00:00:00:0a) brought up with <paramref name="sysctls"/>, the clock run
    /// for <paramref name="ms"/>: what eth0 sent, as (time, ICMPv6 type, IPv6 source's last byte).</summary>
    private (Ipv6Addrconf Ac, List<(long Ms, int Type, UInt128 Src)> Sent) Run(string sysctls, int ms, string address = "")
    {
        var (ac, sent, _, _) = RunWith(sysctls, ms, address);
        return (ac, sent);
    }

    /// <summary><see cref="Run"/>, and a router advertisement arriving on eth0 at <paramref name="raAtMs"/> (none: -1);
    /// also the stack and namespace a.</summary>
    private (Ipv6Addrconf Ac, List<(long Ms, int Type, UInt128 Src)> Sent, NetStack Stack, Namespace A) RunWith(string sysctls, int ms,
        string address = "", int raAtMs = -1)
    {
        Directory.CreateDirectory(Path.Combine(_dir, "ns", "a"));
        Directory.CreateDirectory(Path.Combine(_dir, "ns", "b"));
        File.WriteAllText(Path.Combine(_dir, "links.batch"), "netns add a\nnetns add b\nlink add name eth0 netns a type veth peer name peer0 netns b\n");
        File.WriteAllText(Path.Combine(_dir, "ns", "a", "sysctl.conf"), sysctls);
        File.WriteAllText(Path.Combine(_dir, "ns", "a", "ip.batch"), "link set eth0 address 02:00:00:00:00:0a\n" +
            (address.Length > 0 ? $"-6 addr add {address} dev eth0\n" : "") + "link set eth0 up\n");
        File.WriteAllText(Path.Combine(_dir, "ns", "b", "sysctl.conf"), "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n");
        File.WriteAllText(Path.Combine(_dir, "ns", "b", "ip.batch"), "link set peer0 up\n");
        var scenario = ScenarioLoader.Load(_dir);
        var stack = new NetStack(scenario.Namespaces);
        var tap = new Tap();
        scenario.Namespace("a")!.Device("eth0")!.TxTap = tap;
        var ac = Ipv6Addrconf.BringUpAll(stack);
        var a = scenario.Namespace("a")!;
        if (raAtMs >= 0)
        {
            stack.AdvanceClock(raAtMs * 1_000_000L);
            stack.Receive(a.Device("eth0")!, stack.SkbFrom(RaFrame())!, raAtMs * 1_000_000L);
        }
        stack.AdvanceClock(ms * 1_000_000L);
        var sent = tap.Frames.Select(f =>
        {
            int off = 14 + 40 + (f.Frame[14 + 6] == 0 ? 8 : 0);
            return (f.Ns / 1_000_000, (int)f.Frame[off], Softnet.Packets.Ipv6.Read(f.Frame.AsSpan(14 + 8)));
        }).ToList();
        return (ac, sent, stack, a);
    }

    /// <summary>From fe80::1 (MAC 02:00:00:00:00:01) to ff02::1: hop limit 33, lifetime 1800 s, source link-layer,
    /// MTU 1400 and the prefix 2001:db8:50::/64 (on-link, autonomous).</summary>
    private static byte[] RaFrame()
    {
        var f = new byte[14 + 40 + 16 + 8 + 8 + 32];
        byte[] mac = [2, 0, 0, 0, 0, 1];
        Softnet.Packets.Headers.EthernetView.Write(f, 0x3333_0000_0001UL, 0x0200_0000_0001UL, 0x86dd);
        var ip = f.AsSpan(14);
        Span<byte> s = stackalloc byte[16], d = stackalloc byte[16];
        Softnet.Packets.Ipv6.Write(s, Softnet.Packets.Ipv6.Make(0xfe80_0000_0000_0000UL, 1));
        Softnet.Packets.Ipv6.Write(d, Softnet.Packets.Ipv6.AllNodes);
        Softnet.Packets.Headers.Ipv6View.Write(ip, ip.Length - 40, 58, 255, s, d);
        var m = ip[40..];
        m[0] = 134;
        m[4] = 33;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(m[6..], 1800);
        m[16] = 1; m[17] = 1; mac.CopyTo(m[18..]);
        m[24] = 5; m[25] = 1; System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(m[28..], 1400);
        m[32] = 3; m[33] = 4; m[34] = 64; m[35] = 0xC0;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(m[36..], 3600);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(m[40..], 1800);
        Softnet.Packets.Ipv6.Write(m[48..], Softnet.Packets.Ipv6.Make(0x2001_0db8_0050_0000UL, 0));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(m[2..], Softnet.Packets.Checksum.Compute(m, Softnet.Packets.Checksum.PseudoHeaderV6(s, d, 58, m.Length)));
        return f;
    }

    [Fact]
    public void An_accepted_advertisement_stops_solicitation_and_configures_the_host()
    {
        var (ac, sent, _, a) = RunWith("net.ipv6.conf.eth0.router_solicitation_interval = 1\n", 20_000, raAtMs: 3500);
        // Solicitations at DAD's end (1-2 s) and about 1 s later (the next would be about 2 s on), none after the advertisement.
        Assert.DoesNotContain(sent, x => x.Type == 133 && x.Ms > 3500);
        Assert.Equal(2, ac.RouterSolicitations);
        var eth0 = a.Device("eth0")!;
        Assert.Equal(33, a.HopLimit6(eth0));
        Assert.Equal(1400, a.Mtu6(eth0));
        var dflt = a.Routing6.Lookup(Softnet.Packets.Ipv6.Make(0x2001_0db8_0099_0000UL, 5));
        Assert.Equal(Softnet.Packets.Ipv6.Make(0xfe80_0000_0000_0000UL, 1), dflt?.Gateway);
        // SLAAC: the prefix and the EUI-64 identifier, probed by DAD from :: like any new address.
        var slaac = Softnet.Packets.Ipv6.Make(0x2001_0db8_0050_0000UL, (ulong)(LinkLocal & ulong.MaxValue));
        Assert.NotNull(a.FindAddress6(slaac, eth0));
        Assert.Equal(2, sent.Count(x => x.Type == 135));
    }

    [Fact]
    public void Accept_ra_0_ignores_an_advertisement()
    {
        var (_, _, _, a) = RunWith("net.ipv6.conf.eth0.accept_ra = 0\n", 5000, raAtMs: 2500);
        var eth0 = a.Device("eth0")!;
        Assert.Equal(64, a.HopLimit6(eth0));
        Assert.Equal(1500, a.Mtu6(eth0));
        Assert.Null(a.Routing6.Lookup(Softnet.Packets.Ipv6.Make(0x2001_0db8_0099_0000UL, 5)));
    }

    private static readonly UInt128 LinkLocal = Softnet.Packets.Ipv6.LinkLocalFromMac([2, 0, 0, 0, 0, 0x0a]);

    [Fact]
    public void Defaults_report_probe_then_solicit_after_dad()
    {
        var (ac, sent) = Run("", 4000);
        Assert.Equal((4, 1, 1), (ac.MldReports, ac.DadSolicitations, ac.RouterSolicitations));
        var ns = Assert.Single(sent, s => s.Type == 135);
        Assert.Equal(UInt128.Zero, ns.Src);
        // The probe waits below rtr_solicit_delay (1 s); the solicitation goes when DAD ends, retrans_time (1 s) later,
        // from the link-local address, as do the two reports sent then.
        var rs = Assert.Single(sent, s => s.Type == 133);
        Assert.Equal(ns.Ms + 1000, rs.Ms);
        Assert.Equal(LinkLocal, rs.Src);
        Assert.Equal(2, sent.Count(s => s.Type == 143 && s.Src == 0 && s.Ms < ns.Ms + 1000));
        Assert.Equal(2, sent.Count(s => s.Type == 143 && s.Src == LinkLocal && s.Ms >= rs.Ms));
        // Router solicitations go on for ever (router_solicitations −1), the interval doubling from about 4 s.
        var (_, longer) = Run("", 20_000);
        Assert.Equal(3, longer.Count(s => s.Type == 133));
    }

    [Fact]
    public void A_quiet_host_sends_nothing()
    {
        var (ac, sent) = Run("net.ipv6.conf.all.accept_dad = 0\nnet.ipv6.conf.default.accept_dad = 0\nnet.ipv6.conf.eth0.accept_dad = 0\n" +
            "net.ipv6.conf.eth0.router_solicitations = 0\nnet.ipv6.conf.eth0.addr_gen_mode = 1\n", 10_000);
        Assert.Empty(sent);
        Assert.Equal(0, ac.MldReports);
    }

    [Fact]
    public void Mldv1_dad_transmits_and_solicitation_count()
    {
        var (ac, sent) = Run("net.ipv6.conf.eth0.force_mld_version = 1\nnet.ipv6.conf.eth0.dad_transmits = 3\n" +
            "net.ipv6.conf.eth0.router_solicitations = 2\nnet.ipv6.conf.eth0.router_solicitation_interval = 1\n", 30_000);
        Assert.Equal(2, sent.Count(s => s.Type == 131));
        Assert.DoesNotContain(sent, s => s.Type == 143);
        Assert.Equal(3, ac.DadSolicitations);
        Assert.Equal(2, ac.RouterSolicitations);
    }

    [Fact]
    public void Accept_ra_decides_solicitation_on_a_forwarding_device()
    {
        const string noDad = "net.ipv6.conf.all.accept_dad = 0\nnet.ipv6.conf.default.accept_dad = 0\nnet.ipv6.conf.eth0.accept_dad = 0\n";
        Assert.Equal(0, Run(noDad + "net.ipv6.conf.eth0.forwarding = 1\n", 3000).Ac.RouterSolicitations);
        Assert.Equal(1, Run(noDad + "net.ipv6.conf.eth0.forwarding = 1\nnet.ipv6.conf.eth0.accept_ra = 2\n", 3000).Ac.RouterSolicitations);
        Assert.Equal(0, Run(noDad + "net.ipv6.conf.eth0.accept_ra = 0\n", 3000).Ac.RouterSolicitations);
    }

    [Fact]
    public void A_run_repeats_itself()
    {
        var first = Run("net.ipv6.conf.eth0.dad_transmits = 2\n", 8000, "2001:db8::1/64").Sent;
        var again = Run("net.ipv6.conf.eth0.dad_transmits = 2\n", 8000, "2001:db8::1/64").Sent;
        Assert.Equal(first, again);
        Assert.Equal(4, first.Count(s => s.Type == 135));
    }
}
