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
        stack.AdvanceClock(ms * 1_000_000L);
        var sent = tap.Frames.Select(f =>
        {
            int off = 14 + 40 + (f.Frame[14 + 6] == 0 ? 8 : 0);
            return (f.Ns / 1_000_000, (int)f.Frame[off], Softnet.Packets.Ipv6.Read(f.Frame.AsSpan(14 + 8)));
        }).ToList();
        return (ac, sent);
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
