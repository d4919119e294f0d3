using System.Security.Cryptography;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Topology;
using Softnet.Transport;
using Softnet.Tests.Topology;
using Xunit;

namespace Softnet.Tests.Transport;

/// <summary>
/// `softnet gen --server-key 0` into the iperf-server scenario: the generator's client answers the SYN-ACKs the
/// scenario's listener sends, and the reader gets iperf3's byte stream exactly.
/// </summary>
public class IperfReceiveTests
{
    /// <summary>iperf3's stream as the server reads it, written here independently of the generator: one blksize
    /// buffer of "0123456789..." sent again and again, so byte o is the digit (o mod blksize) mod 10.</summary>
    private static string StreamSha16(long length, int block)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[block];
        for (int i = 0; i < block; i++) buf[i] = (byte)('0' + i % 10);
        for (long left = length; left > 0; left -= block) sha.AppendData(buf, 0, (int)Math.Min(block, left));
        return Convert.ToHexStringLower(sha.GetHashAndReset())[..16];
    }

    private static (ScenarioReport Report, string Out) Replay(GeneratorOptions o)
    {
        string dir = Directory.CreateTempSubdirectory("softnet-iperf-").FullName;
        string pcap = Path.Combine(dir, "gen.pcap");
        using (var w = CaptureWriter.Create(pcap)) new TrafficGenerator([o]).WriteTo(w);
        string outDir = Path.Combine(dir, "out");
        return (ScenarioReplay.Run(TopologyTestData.PathOf("iperf-server"), pcap, "srv:vs", outDir), outDir);
    }

    [Theory]
    [InlineData(1, 1_000_000, 128 * 1024, 1e9)]
    [InlineData(4, 4 * 2 * 1024 * 1024, 128 * 1024, 2e9)]
    [InlineData(2, 300_001, 1000, 5e8)]
    public void Generated_tcp_streams_arrive_byte_exact(int streams, long bytes, int block, double bps)
    {
        var o = new GeneratorOptions { Streams = streams, Bytes = bytes, BlockSize = block, Rate = Rate.FromBits(bps), ServerKey = 0 };
        var (report, outDir) = Replay(o);
        using (report)
        {
            var srv = report.Scenario.Namespace("srv")!;
            var listener = srv.Sockets.All.OfType<TcpListenSock>().Single();
            Assert.Equal(streams, listener.Accepted.Count);
            long total = 0;
            for (int s = 0; s < streams; s++)
            {
                long quota = bytes / streams + (s < bytes % streams ? 1 : 0);
                var r = listener.Accepted[s].Record!;
                Assert.Equal("fin", r.End);
                Assert.Equal(quota, r.Bytes);
                Assert.Equal(StreamSha16(quota, block), Sock.Hex16(r.Sha));
                total += r.Bytes;
            }
            // The reader's throughput is the generator's rate (less the headers' share of it).
            var st = listener.Stats;
            Assert.Equal(total, st.Bytes);
            Assert.InRange(st.BitsPerSecond, bps * 0.85, bps * 1.0);
            Assert.Contains("  connection 10.0.0.1:", File.ReadAllText(Path.Combine(outDir, "srv", "sockets.txt")));
            // Nothing dropped, nothing reset: every client segment was in window and in order.
            Assert.Equal(0, srv.Mib[Telemetry.SnmpCounter.TcpOutRsts]);
            Assert.Equal(0, srv.Counters.Drops.Total);
            Assert.Equal(streams, srv.Mib[Telemetry.SnmpCounter.TcpPassiveOpens]);
            Assert.True(srv.Counters.Conserved);
        }
    }

    /// <summary>The reader pinned with `cpu N` shares that CPU with softirq when reads cost CPU time: beside the NIC's
    /// CPU it keeps up; on it (softirq taking a third of the CPU, the reader's copies most of the rest) it falls
    /// behind, the window closes and the open-loop capture's later segments are lost.</summary>
    [Fact]
    public void A_reader_on_the_softirq_cpu_gets_less_of_it()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-readercpu-").FullName;
        string pcap = Path.Combine(dir, "gen.pcap");
        using (var w = CaptureWriter.Create(pcap))
            new TrafficGenerator([new GeneratorOptions { Bytes = 4 * 1024 * 1024, Rate = Rate.FromBits(1e9), ServerKey = 0 }]).WriteTo(w);
        long Read(int cpu)
        {
            string sc = Path.Combine(dir, $"sc{cpu}");
            foreach (var f in Directory.GetFiles(TopologyTestData.PathOf("iperf-server"), "*", SearchOption.AllDirectories))
            {
                string to = Path.Combine(sc, Path.GetRelativePath(TopologyTestData.PathOf("iperf-server"), f));
                Directory.CreateDirectory(Path.GetDirectoryName(to)!);
                File.Copy(f, to);
            }
            string sockets = Path.Combine(sc, "ns", "srv", "sockets");
            File.WriteAllText(sockets, File.ReadAllText(sockets).Replace("tcp listen 10.0.0.2:5201", $"tcp listen 10.0.0.2:5201 cpu {cpu}"));
            var options = new ScenarioOptions
            {
                Replay = new Softnet.Pipeline.ReplayOptions { Gro = null, Cpus = [0, 1], PollCostNs = 4000, ReaderNsPerByte = 6, ReaderNsPerRead = 3000 },
            };
            using var report = ScenarioReplay.Run(sc, pcap, "srv:vs", Path.Combine(dir, $"out{cpu}"), options);
            var listener = report.Scenario.Namespace("srv")!.Sockets.All.OfType<TcpListenSock>().Single();
            return listener.Stats.Bytes;
        }
        long apart = Read(1), together = Read(0);
        Assert.Equal(4 * 1024 * 1024, apart);
        Assert.True(together < apart / 2, $"the reader on the softirq CPU read {together} bytes, beside it {apart}");
    }

    [Fact]
    public void Generated_udp_datagrams_reach_the_socket()
    {
        var o = new GeneratorOptions { Protocol = TrafficProtocol.Udp, Bytes = 200 * 1448, Rate = Rate.FromBits(1e8), ServerKey = 0 };
        var (report, _) = Replay(o);
        using (report)
        {
            var srv = report.Scenario.Namespace("srv")!;
            var udp = srv.Sockets.All.OfType<UdpSock>().Single();
            // The connect message, then 200 datagrams of data.
            Assert.Equal(201, udp.Stats.Items);
            Assert.Equal(200 * 1448 + 4, udp.Stats.Bytes);
            Assert.Equal(0, udp.Drops);
        }
    }

    [Fact]
    public void Server_key_writes_only_the_client_side()
    {
        var two = new TrafficGenerator([new GeneratorOptions { Bytes = 100_000 }]);
        var one = new TrafficGenerator([new GeneratorOptions { Bytes = 100_000, ServerKey = 0 }]);
        var buf = new byte[two.MaxFrameLength];
        int n2 = 0, n1 = 0, fromServer = 0;
        while (two.TryNext(buf, out _, out _)) n2++;
        while (one.TryNext(buf, out int len, out _))
        {
            n1++;
            if (buf[6] == 0x02 && buf[11] == 0x02) fromServer++; // source MAC 02:00:00:00:00:02
        }
        Assert.Equal(0, fromServer);
        Assert.True(n1 < n2 && n1 > n2 / 2, $"{n1} client frames of {n2}");
    }
}
