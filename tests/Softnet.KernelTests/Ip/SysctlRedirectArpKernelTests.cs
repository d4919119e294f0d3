using System.Buffers.Binary;
using Softnet.KernelTests.Support;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Ip;

/// <summary>
/// The per-device IPv4 sysctls of a forwarding host, each setting through the kernel and through Softnet on the same
/// capture, compared whole (what r sends, its nstat counters): send_redirects (from conf.all, conf.default or the
/// device; the redirects paced per source across a pause), shared_media (a sender off the device's subnets gets no
/// redirect without it), log_martians (nothing to see), arp_ignore 1, 2 and 8 (which requests are answered) and
/// arp_announce 1 and 2 (the sender address of r's own request for an unresolved neighbour); on a host (forwarding
/// off), accept_redirects with secure_redirects and shared_media (which redirects change the gateway r's replies take).
/// </summary>
[Trait("Category", "Kernel")]
public sealed class SysctlRedirectArpKernelTests
{
    private const string WireMac0 = SysctlRouterScenario.WireMac0, RMac0 = SysctlRouterScenario.RMac0, GwMac9 = "02:00:0a:09:00:09";

    /// <summary>An ICMP redirect (type 5) from <paramref name="src"/> naming <paramref name="gateway"/>, quoting the IP
    /// header and 8 bytes of <paramref name="offending"/>.</summary>
    private static byte[] Redirect(string src, byte code, string gateway, byte[] offending)
    {
        var h = new byte[8 + 28];
        h[0] = 5;
        h[1] = code;
        Frames.Ip4(gateway).CopyTo(h, 4);
        offending.AsSpan(0, 28).CopyTo(h.AsSpan(8));
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), Softnet.Packets.Checksum.Compute(h));
        return Frames.Ipv4(src, "10.9.0.2", 1, h, id: 0x4321);
    }

    private static void BuildScenario(string scn, string sysctls, bool forwarding = true)
        => SysctlRouterScenario.Write(scn, (forwarding ? "net.ipv4.ip_forward = 1\n" : "") + sysctls,
            // A network behind a gateway on eth0's own link, and one reached directly through eth0 though off its subnet.
            "route add 10.20.0.0/24 via 10.9.0.1 dev eth0\nroute add 10.30.0.0/24 dev eth0\n" +
            $"neigh add 10.9.0.1 lladdr {WireMac0} dev eth0 nud permanent\n" +
            $"neigh add 10.9.0.10 lladdr {WireMac0} dev eth0 nud permanent\n" +
            $"neigh add 10.9.0.77 lladdr {WireMac0} dev eth0 nud permanent\n" +
            $"neigh add 10.30.0.7 lladdr {WireMac0} dev eth0 nud permanent\n" +
            "neigh add 10.10.0.9 lladdr 02:00:0a:0a:00:01 dev eth1 nud permanent\n" +
            // The gateway redirects name (another MAC, so the frames show which gateway r used).
            $"neigh add 10.9.0.9 lladdr {GwMac9} dev eth0 nud permanent\n");

    /// <summary>An ARP request from wire0's MAC asking for <paramref name="tip"/> as <paramref name="sip"/>.</summary>
    private static byte[] ArpRequest(string sip, string tip)
    {
        var f = new byte[42];
        Frames.Mac("ff:ff:ff:ff:ff:ff").CopyTo(f, 0);
        Frames.Mac(WireMac0).CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x0806);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14), 1);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 0x0800);
        f[18] = 6;
        f[19] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(20), 1);
        Frames.Mac(WireMac0).CopyTo(f, 22);
        Frames.Ip4(sip).CopyTo(f, 28);
        Frames.Ip4(tip).CopyTo(f, 38);
        return f;
    }

    private static ScenarioCapture Traffic(string kind)
    {
        var c = new ScenarioCapture();
        void In(byte[] ip, string note) => c.Add("eth0", Frames.Eth(RMac0, WireMac0, ip), note);
        if (kind == "redirect")
        {
            // Out the way they came, by a gateway on the sender's subnet: a redirect for the first, the next within
            // twice ip_rt_redirect_load (40 ms) of it gets none.
            for (int i = 0; i < 2; i++) In(Frames.Udp("10.9.0.10", (ushort)(5000 + i), "10.20.0.5", 53), "via the gateway on the same link");
            // A sender reached directly through eth0 but off its subnets: shared_media decides.
            In(Frames.Udp("10.30.0.7", 5100, "10.20.0.5", 53), "sender off the subnet");
            // Past the doubled load (40 ms): the source's second redirect, then one paced out, then another device.
            c.Pause(600);
            In(Frames.Udp("10.9.0.10", 5003, "10.20.0.5", 53), "after the pause");
            In(Frames.Udp("10.9.0.10", 5004, "10.9.0.77", 53), "on-link destination, paced out");
            In(Frames.Udp("10.9.0.10", 5005, "10.10.0.9", 53), "out another device");
        }
        else if (kind == "accept")
        {
            // From the gateway r uses for 10.20.0.0/24, about r's datagram from its UDP socket: 10.20.0.5 by 10.9.0.9.
            In(Redirect("10.9.0.1", 1, "10.9.0.9", Frames.Udp("10.9.0.2", 7000, "10.20.0.5", 53)), "redirect for a socket's datagram");
            In(Frames.Echo("10.20.0.5", "10.9.0.2", 8, 11, 1), "echo from the redirected destination");
            // About an echo reply of ours (icmp_err takes it, no socket needed); the new gateway is unresolved.
            In(Redirect("10.9.0.1", 1, "10.9.0.8", Frames.Echo("10.9.0.2", "10.20.0.6", 0, 12, 1)), "redirect to an unresolved gateway");
            In(Frames.Echo("10.20.0.6", "10.9.0.2", 8, 11, 2), "echo from a destination whose gateway is unresolved");
            // No socket sent it: nobody acts on it; an echo request (ping_err's, no ping socket): neither. Not from the
            // gateway in use: refused. A network redirect (code 0): taken as a host one.
            In(Redirect("10.9.0.1", 1, "10.9.0.9", Frames.Udp("10.9.0.2", 7001, "10.20.0.7", 53)), "redirect for no socket");
            In(Redirect("10.9.0.1", 1, "10.9.0.9", Frames.Echo("10.9.0.2", "10.20.0.10", 8, 12, 4)), "redirect for an echo request");
            In(Redirect("10.9.0.10", 1, "10.9.0.9", Frames.Echo("10.9.0.2", "10.20.0.8", 0, 12, 2)), "redirect from another host");
            In(Redirect("10.9.0.1", 0, "10.9.0.9", Frames.Echo("10.9.0.2", "10.20.0.9", 0, 12, 3)), "net redirect");
            for (int i = 7; i <= 10; i++) In(Frames.Echo($"10.20.0.{i}", "10.9.0.2", 8, 11, (ushort)(3 + i)), "echo from 10.20.0." + i);
        }
        else
        {
            c.Add("eth0", ArpRequest("10.9.0.10", "10.9.0.2"), "who has eth0's address");
            c.Add("eth0", ArpRequest("10.9.0.10", "10.10.0.2"), "who has eth1's address");
            c.Add("eth0", ArpRequest("10.99.0.1", "10.9.0.2"), "who has eth0's address, asked from another subnet");
            // The reply to 10.9.0.20 (from eth1's address, out of eth0) needs its neighbour resolved: r's request.
            In(Frames.Echo("10.9.0.20", "10.10.0.2", 8, 9, 1), "echo to eth1's address from an unresolved host");
        }
        return c;
    }

    public static TheoryData<string, string, string> Settings() => new()
    {
        { "redirects-default", "redirect", "" },
        { "send-redirects-0", "redirect", "net.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.default.send_redirects = 0\n" },
        { "send-redirects-eth0", "redirect", "net.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.default.send_redirects = 0\nnet.ipv4.conf.eth0.send_redirects = 1\n" },
        { "shared-media-0", "redirect", "net.ipv4.conf.all.shared_media = 0\nnet.ipv4.conf.default.shared_media = 0\n" },
        { "log-martians", "redirect", "net.ipv4.conf.all.log_martians = 1\nnet.ipv4.conf.default.log_martians = 1\n" },
        // A host (forwarding off) takes redirects by default; accept_redirects 0 in all and default refuses them; a
        // router (ip_forward 1 clears all.accept_redirects) refuses them though its devices say 1.
        { "accept-redirects-host", "accept", "" },
        { "accept-redirects-0", "accept", "net.ipv4.conf.all.accept_redirects = 0\nnet.ipv4.conf.default.accept_redirects = 0\n" },
        { "accept-redirects-eth0", "accept", "net.ipv4.conf.all.accept_redirects = 0\nnet.ipv4.conf.eth0.accept_redirects = 1\n" },
        { "accept-redirects-router", "accept", "net.ipv4.ip_forward = 1\n" },
        // Off shared media the new gateway must be some route's already (secure_redirects): 10.9.0.9 is none.
        { "accept-redirects-secure", "accept", "net.ipv4.conf.all.shared_media = 0\nnet.ipv4.conf.default.shared_media = 0\n" },
        { "accept-redirects-not-secure", "accept", "net.ipv4.conf.all.shared_media = 0\nnet.ipv4.conf.default.shared_media = 0\n" +
            "net.ipv4.conf.all.secure_redirects = 0\nnet.ipv4.conf.default.secure_redirects = 0\n" },
        { "arp-defaults", "arp", "" },
        { "arp-ignore-1", "arp", "net.ipv4.conf.all.arp_ignore = 1\n" },
        { "arp-ignore-2", "arp", "net.ipv4.conf.eth0.arp_ignore = 2\nnet.ipv4.conf.all.arp_ignore = 1\n" },
        { "arp-ignore-8", "arp", "net.ipv4.conf.default.arp_ignore = 8\n" },
        { "arp-announce-1", "arp", "net.ipv4.conf.all.arp_announce = 1\n" },
        { "arp-announce-2", "arp", "net.ipv4.conf.eth0.arp_announce = 2\n" },
    };

    [SkippableTheory]
    [MemberData(nameof(Settings))]
    public void A_device_sysctl_changes_what_r_sends_as_in_the_kernel(string name, string traffic, string sysctls)
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        var (kernel, softnet) = ScenarioPair.Run("sysctl-dev-" + name, scn => BuildScenario(scn, sysctls, forwarding: traffic != "accept"),
            Traffic(traffic), "r");
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions { IgnoreFiles = new HashSet<string> { "wire/wire0.tx.pcap", "wire/wire1.tx.pcap" } });
    }
}
