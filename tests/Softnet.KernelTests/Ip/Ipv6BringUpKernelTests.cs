using System.Buffers.Binary;
using Softnet.Capture;
using Softnet.KernelTests.Support;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Ip;

/// <summary>
/// What a host sends when IPv6 comes up on a device (addrconf_notify NETDEV_UP: MLD reports, DAD probes, router
/// solicitations) under the sysctls that shape it, the kernel's against Softnet's <see cref="Softnet.Ip.Ipv6Addrconf"/>:
/// the kernel's device is brought up with its peer capturing for a window; Softnet loads the same scenario, brings the
/// device up on its clock and runs the timers for the same window. The kernel draws its delays at random, so messages
/// are compared as a multiset of (kind, source, destination, groups or target), not by time; each window ends away
/// from any timer that could fall either side of it. MLD sources are compared as a set: a report due while DAD ends
/// may go from :: or from the new link-local address.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class Ipv6BringUpKernelTests
{
    private const string Mac = "02:00:00:00:00:0a", PeerMac = "02:00:00:00:00:0b";

    public static TheoryData<string, string, string, int> Cases() => new()
    {
        // The defaults: MLDv2 reports for the link-local's solicited-node group from :: (twice), its DAD probe, then
        // the reports again from the address (twice) and a router solicitation; the next solicitation is 4 s later.
        { "defaults", "", "", 4200 },
        // A quiet host: no DAD, no router solicitation, no link-local address (MLD reports every group a device
        // joins beyond ff02::1: without an address it joins none).
        { "quiet", "net.ipv6.conf.all.accept_dad = 0\nnet.ipv6.conf.default.accept_dad = 0\nnet.ipv6.conf.eth0.accept_dad = 0\n" +
            "net.ipv6.conf.eth0.router_solicitations = 0\nnet.ipv6.conf.eth0.addr_gen_mode = 1\n", "", 600 },
        // No DAD or solicitation, but a link-local address: its MLDv2 reports only, at a short interval.
        { "no-dad-no-rs", "net.ipv6.conf.all.accept_dad = 0\nnet.ipv6.conf.default.accept_dad = 0\nnet.ipv6.conf.eth0.accept_dad = 0\n" +
            "net.ipv6.conf.eth0.router_solicitations = 0\nnet.ipv6.conf.eth0.mldv2_unsolicited_report_interval = 100\n", "", 600 },
        // MLDv1 forced (two reports per group, from :: while tentative), two DAD probes right away (a zero delay), two
        // solicitations a second apart once DAD is over.
        { "mldv1-dad2-rs2", "net.ipv6.conf.eth0.force_mld_version = 1\nnet.ipv6.conf.eth0.mldv1_unsolicited_report_interval = 300\n" +
            "net.ipv6.conf.eth0.dad_transmits = 2\nnet.ipv6.conf.eth0.router_solicitation_delay = 0\n" +
            "net.ipv6.conf.eth0.router_solicitations = 2\nnet.ipv6.conf.eth0.router_solicitation_interval = 1\n", "", 4000 },
        // A forwarding device with accept_ra 2 still solicits; it reports the all-routers groups and the
        // subnet-router anycast's solicited-node group besides its addresses'.
        { "forwarding-accept-ra-2", "net.ipv6.conf.all.accept_dad = 0\nnet.ipv6.conf.default.accept_dad = 0\nnet.ipv6.conf.eth0.accept_dad = 0\n" +
            "net.ipv6.conf.eth0.forwarding = 1\nnet.ipv6.conf.eth0.accept_ra = 2\nnet.ipv6.conf.eth0.router_solicitations = 1\n" +
            "net.ipv6.conf.eth0.mldv2_unsolicited_report_interval = 100\n", "2001:db8:1::1/64", 600 },
        // Forwarding with accept_ra 1: no solicitation.
        { "forwarding-accept-ra-1", "net.ipv6.conf.all.accept_dad = 0\nnet.ipv6.conf.default.accept_dad = 0\nnet.ipv6.conf.eth0.accept_dad = 0\n" +
            "net.ipv6.conf.eth0.forwarding = 1\nnet.ipv6.conf.eth0.mldv2_unsolicited_report_interval = 100\n", "", 600 },
        // enhanced_dad off on conf.all and the device: the probe without its nonce option.
        { "no-nonce", "net.ipv6.conf.all.enhanced_dad = 0\nnet.ipv6.conf.eth0.enhanced_dad = 0\nnet.ipv6.conf.eth0.router_solicitation_delay = 0\n" +
            "net.ipv6.conf.eth0.router_solicitations = 0\nnet.ipv6.conf.eth0.mldv2_unsolicited_report_interval = 100\n", "", 1500 },
        // A nodad address: no probe for it, the link-local's only; reports for both groups, one solicitation.
        { "nodad-address", "net.ipv6.conf.eth0.router_solicitation_delay = 0\nnet.ipv6.conf.eth0.mldv2_unsolicited_report_interval = 100\n",
            "2001:db8:1::1/64 nodad", 2000 },
        // A host with accept_ra 0: no solicitation; a configured address's DAD probe (from :: to its group).
        { "accept-ra-0-address", "net.ipv6.conf.eth0.accept_ra = 0\nnet.ipv6.conf.eth0.router_solicitation_delay = 0\n" +
            "net.ipv6.conf.eth0.mldv2_unsolicited_report_interval = 100\n", "2001:db8:1::1/64", 1800 },
    };

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Bring_up_messages_match_the_kernel(string name, string sysctls, string address, int windowMs)
    {
        string? skip = Netns.Unavailable("sysctl", "python3");
        Skip.If(skip != null, skip);
        var kernelFrames = KernelRun(sysctls, address, windowMs);
        var kernel = Describe(kernelFrames.Select(f => f.Frame).ToList());
        var softnet = Describe(SoftnetRun(name, sysctls, address, windowMs));
        Assert.True(kernel.Messages.SequenceEqual(softnet.Messages),
            $"{name}: kernel sent\n  {string.Join("\n  ", kernel.Messages)}\n(at ms {string.Join(", ", kernelFrames.Select(f => (f.TimestampNs - kernelFrames[0].TimestampNs) / 1_000_000))})\nSoftnet sent\n  {string.Join("\n  ", softnet.Messages)}");
        Assert.Equal(kernel.MldSources, softnet.MldSources);
    }

    /// <summary>The kernel: eth0 in one namespace with the sysctls (default and all keys before the device exists, its own
    /// after), its peer in another with IPv6 off capturing everything eth0 sends for <paramref name="windowMs"/> after
    /// eth0 comes up.</summary>
    private static List<(long TimestampNs, byte[] Frame)> KernelRun(string sysctls, string address, int windowMs)
    {
        using var a = Netns.Create("sn-v6up");
        using var b = Netns.Create("sn-v6up");
        b.DisableIpv6();
        var lines = sysctls.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).ToList();
        foreach (var kv in lines.Where(kv => !kv[0].Contains(".eth0.")))
            a.Sysctl(kv[0].Trim(), kv[1].Trim());
        Proc.Check("ip", "link", "add", "name", "eth0", "netns", a.Name, "address", Mac, "type", "veth", "peer", "name", "peer0", "netns", b.Name, "address", PeerMac);
        foreach (var kv in lines.Where(kv => kv[0].Contains(".eth0.")))
            a.Sysctl(kv[0].Trim(), kv[1].Trim());
        if (address.Length > 0) a.Check(["ip", "-6", "addr", "add", address.Split(' ')[0], "dev", "eth0", .. address.Split(' ')[1..]]);
        // eth0 goes up first, without carrier (its peer is down): addrconf waits for the link. The peer coming up gives
        // both carrier; linkwatch then activates eth0's qdisc before NETDEV_CHANGE starts addrconf. Brought up with its
        // peer already up, eth0 could start sending before linkwatch activated its qdisc, and the noop qdisc drops
        // those first reports (how many depends on when linkwatch last ran): a race Softnet does not model.
        a.Check("ip", "link", "set", "eth0", "up");
        // A packet socket on the peer (a python3 listener in b: its own process, so nothing in this one can delay it),
        // open before eth0 comes up, hears every frame eth0 sends; it stops windowMs after the ready file is removed,
        // which happens once `ip link set up` returned (under load that can take a while; the frames wait in the socket).
        string ready = Path.Combine(Path.GetTempPath(), $"sn-v6up-{Environment.ProcessId}-{Guid.NewGuid():N}");
        string script = "import socket,select,time,os,sys\n" +
            "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3)); s.bind(('peer0',0))\n" +
            $"open('{ready}','w').close()\n" +
            $"while os.path.exists('{ready}'): time.sleep(0.005)\n" +
            $"t0=time.time()\nwhile time.time()-t0<{windowMs / 1000.0:0.000}:\n" +
            "  r,_,_=select.select([s],[],[],0.02)\n" +
            "  if not r: continue\n" +
            // Bound while peer0 was down, the socket reports ENETDOWN once (sk_err) before its first frame.
            "  try: f=s.recv(65535)\n" +
            "  except OSError: continue\n" +
            "  print('%d %s' % (int((time.time()-t0)*1e9), f.hex()))\n" +
            "sys.stdout.flush()\n";
        var listen = Task.Run(() => Proc.Run("ip", ["netns", "exec", b.Name, "python3", "-c", script], windowMs + 30_000));
        for (int i = 0; i < 500 && !File.Exists(ready); i++) Thread.Sleep(10);
        Assert.True(File.Exists(ready), "the listener did not start");
        b.Check("ip", "link", "set", "peer0", "up");
        File.Delete(ready);
        var (exit, stdout, stderr) = listen.Result;
        Assert.True(exit == 0, stderr);
        var frames = new List<(long TimestampNs, byte[] Frame)>();
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var t = line.Split(' ');
            var f = Convert.FromHexString(t[1]);
            if (f.Length >= 14 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x86dd)
                frames.Add((long.Parse(t[0], System.Globalization.CultureInfo.InvariantCulture), f));
        }
        return frames;
    }

    /// <summary>Softnet: the same namespaces as a scenario, eth0 brought up by <see cref="Softnet.Ip.Ipv6Addrconf"/>
    /// and the clock run for the window; eth0's transmit tap holds what it sent.</summary>
    private static List<byte[]> SoftnetRun(string name, string sysctls, string address, int windowMs)
    {
        string scn = Path.Combine(AppContext.BaseDirectory, "scenario-runs", "v6-bring-up-" + name);
        if (Directory.Exists(scn)) Directory.Delete(scn, true);
        ScenarioPair.Write(scn, "links.batch", "netns add a\nnetns add b\nlink add name eth0 netns a type veth peer name peer0 netns b\n");
        ScenarioPair.Write(scn, "ns/a/sysctl.conf", sysctls);
        ScenarioPair.Write(scn, "ns/a/ip.batch", $"link set lo up\nlink set eth0 address {Mac}\n" +
            (address.Length > 0 ? $"-6 addr add {address.Split(' ')[0]} dev eth0 {string.Join(' ', address.Split(' ')[1..])}\n" : "") + "link set eth0 up\n");
        ScenarioPair.Write(scn, "ns/b/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n");
        ScenarioPair.Write(scn, "ns/b/ip.batch", $"link set lo up\nlink set peer0 address {PeerMac}\nlink set peer0 up\n");
        var scenario = ScenarioLoader.Load(scn);
        var stack = new NetStack(scenario.Namespaces);
        var tap = new FrameList();
        scenario.Namespace("a")!.Device("eth0")!.TxTap = tap;
        Softnet.Ip.Ipv6Addrconf.BringUpAll(stack);
        stack.AdvanceClock((long)windowMs * 1_000_000);
        return tap.Frames;
    }

    private sealed class FrameList : ICaptureWriter
    {
        public readonly List<byte[]> Frames = new();
        public void Write(long timestampNs, ReadOnlySpan<byte> frame, int originalLength = -1, int interfaceId = 0) => Frames.Add(frame.ToArray());
        public void Flush() { }
        public void Dispose() { }
    }

    /// <summary>Each frame as "kind src > dst detail" (sorted), and the set of MLD report sources.</summary>
    public static (List<string> Messages, SortedSet<string> MldSources) Describe(List<byte[]> frames)
    {
        var msgs = new List<string>();
        var mldSrc = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var f in frames)
        {
            if (f.Length < 54 || BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) != 0x86dd) { msgs.Add("non-IPv6 " + Convert.ToHexString(f)); continue; }
            var ip = f.AsSpan(14);
            string src = Softnet.Packets.Ipv6.Format(Softnet.Packets.Ipv6.Read(ip[8..])), dst = Softnet.Packets.Ipv6.Format(Softnet.Packets.Ipv6.Read(ip[24..]));
            int next = ip[6], off = 40;
            if (next == 0) { next = ip[40]; off += (ip[41] + 1) * 8; }
            if (next != 58) { msgs.Add($"proto {next} {src} > {dst}"); continue; }
            var m = ip[off..];
            var mb = m.ToArray();
            string what = m[0] switch
            {
                143 => "mldv2 " + string.Join(",", Enumerable.Range(0, BinaryPrimitives.ReadUInt16BigEndian(m[6..]))
                    .Select(i => $"{mb[8 + 20 * i]}:{Softnet.Packets.Ipv6.Format(Softnet.Packets.Ipv6.Read(mb.AsSpan(12 + 20 * i)))}").Order(StringComparer.Ordinal)),
                131 => "mldv1 " + Softnet.Packets.Ipv6.Format(Softnet.Packets.Ipv6.Read(m[8..])),
                135 => "ns " + Softnet.Packets.Ipv6.Format(Softnet.Packets.Ipv6.Read(m[8..])) + $" opts {m.Length - 24}",
                133 => $"rs opts {m.Length - 8}",
                _ => $"icmp6 type {m[0]}",
            };
            if (m[0] is 143 or 131) { mldSrc.Add(src); msgs.Add($"{what} > {dst} hop {ip[7]}"); }
            else msgs.Add($"{what} {src} > {dst} hop {ip[7]}");
        }
        msgs.Sort(StringComparer.Ordinal);
        return (msgs, mldSrc);
    }
}
