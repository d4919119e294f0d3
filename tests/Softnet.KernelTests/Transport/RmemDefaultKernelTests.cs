using System.Net;
using System.Net.Sockets;
using Softnet.Capture.Live;
using Softnet.KernelTests.Support;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Telemetry;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Transport;

/// <summary>Tests that write the kernel's global net.core values (init_net's, seen by every namespace): they save and
/// restore the host's value and run alone, after every parallel collection of this assembly.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalSysctlCollection
{
    public const string Name = "GlobalSysctl";
}

/// <summary>
/// net.core.rmem_default: the receive buffer of a UDP socket that never set SO_RCVBUF. The same burst of datagrams
/// to a socket that does not read, on the kernel (rmem_default written in the root namespace while the socket is
/// created, then put back) and on Softnet (the scenario's sysctl.conf): the same RcvbufErrors, and once the reader
/// reads, the same InDatagrams.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(GlobalSysctlCollection.Name)]
public sealed class RmemDefaultKernelTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string RmemDefaultPath = "/proc/sys/net/core/rmem_default";
    private const string Mac0 = "02:00:0a:63:00:01", Mac1 = "02:00:0a:63:00:02";
    private const int Datagrams = 24, Payload = 200, Rmem = 4608;

    private static byte[] Frame(int i)
        => Frames.Eth(Mac0, Mac1, Frames.WithId(Frames.Udp("10.99.0.2", 40000, "10.99.0.1", 5353, payload: Payload), (ushort)(0x100 + i)));

    private static (long RcvbufErrors, long InDatagrams) Kernel()
    {
        using var a = Netns.Create("snrm");
        using var b = Netns.Create("snrm");
        a.DisableIpv6();
        b.DisableIpv6();
        Netns.CreateVeth(a, "v0", b, "v1");
        a.Check("ip", "link", "set", "v0", "address", Mac0);
        a.Check("ip", "addr", "add", "10.99.0.1/24", "dev", "v0");
        a.Check("ip", "link", "set", "v0", "up");
        b.Check("ip", "link", "set", "v1", "address", Mac1);
        b.Check("ip", "link", "set", "v1", "up");
        Socket sock;
        string saved = File.ReadAllText(RmemDefaultPath).Trim();
        try
        {
            // sock_init_data reads rmem_default when the socket is made: the host's value is back right after.
            File.WriteAllText(RmemDefaultPath, Rmem.ToString(System.Globalization.CultureInfo.InvariantCulture));
            using (new NetnsScope(a.Name)) sock = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        }
        finally
        {
            File.WriteAllText(RmemDefaultPath, saved);
        }
        using (sock)
        {
            Assert.Equal(Rmem, sock.ReceiveBufferSize);
            sock.Bind(new IPEndPoint(IPAddress.Parse("10.99.0.1"), 5353));
            using (var tx = new RawPacketSocket(b.Name, "v1"))
                for (int i = 0; i < Datagrams; i++) tx.Send(Frame(i));
            Thread.Sleep(300);
            var before = SnmpMib.ParseNstat(a.Check("nstat", "-asz"));
            var buf = new byte[2048];
            sock.Blocking = false;
            while (sock.Available > 0) sock.Receive(buf);
            var after = SnmpMib.ParseNstat(a.Check("nstat", "-asz"));
            return (before.GetValueOrDefault("UdpRcvbufErrors"), after.GetValueOrDefault("UdpInDatagrams"));
        }
    }

    private static (long RcvbufErrors, long InDatagrams) Softnet()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-rmem-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "links.batch"), "netns add a\nnetns add b\nlink add v0 netns a type veth peer name v1 netns b\n");
            Directory.CreateDirectory(Path.Combine(dir, "ns", "a"));
            File.WriteAllText(Path.Combine(dir, "ns", "a", "ip.batch"), $"link set v0 address {Mac0}\naddr add 10.99.0.1/24 dev v0\nlink set v0 up\n");
            File.WriteAllText(Path.Combine(dir, "ns", "a", "sysctl.conf"), $"net.core.rmem_default = {Rmem}\n");
            File.WriteAllText(Path.Combine(dir, "ns", "a", "sockets"), "udp 10.99.0.1:5353\n");
            var sc = ScenarioLoader.Load(dir);
            var ns = sc.Namespace("a")!;
            var stack = new NetStack(sc.Namespaces) { DeferReaders = true };
            long ts = 1_000_000_000_000;
            for (int i = 0; i < Datagrams; i++) stack.Receive(ns.Device("v0")!, stack.SkbFrom(Frame(i))!, ts += 1_000_000);
            long errors = ns.Mib[SnmpCounter.UdpRcvbufErrors];
            stack.RunReaders();
            return (errors, ns.Mib[SnmpCounter.UdpInDatagrams]);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [SkippableFact]
    public void A_small_rmem_default_drops_the_same_datagrams_as_the_kernel()
    {
        string? why = Netns.Unavailable("nstat");
        Skip.If(why != null, why);
        var kernel = Kernel();
        var softnet = Softnet();
        output.WriteLine($"kernel: UdpRcvbufErrors {kernel.RcvbufErrors}, UdpInDatagrams {kernel.InDatagrams}; softnet: {softnet.RcvbufErrors}, {softnet.InDatagrams}");
        Assert.True(kernel.RcvbufErrors > 0, $"the kernel dropped nothing ({kernel})");
        Assert.Equal(kernel, softnet);
    }
}
