using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Telemetry;
using Softnet.Topology;
using Softnet.Transport;
using Softnet.Tests.Topology;
using Xunit;

namespace Softnet.Tests.Transport;

/// <summary>
/// The socket backlog (tcp_add_backlog, __release_sock) in deterministic mode: a reader whose reads take virtual time
/// holds its socket while it copies, segments meanwhile wait in the backlog, coalesced where they can be, and the
/// reader processes them on its CPU when the read ends, acknowledging a coalesced run once.
/// </summary>
public class SocketBacklogTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private readonly record struct Run(long Bytes, string End, long InSegs, long OutSegs, long Coalesced, long BacklogDrops);

    private static Run Replay(string dir, string pcap, string name, double nsPerByte, long nsPerRead, int? rmem = null)
    {
        string sc = Path.Combine(dir, name);
        string src = TopologyTestData.PathOf("iperf-server");
        foreach (var f in Directory.GetFiles(src, "*", SearchOption.AllDirectories))
        {
            string to = Path.Combine(sc, Path.GetRelativePath(src, f));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(f, to);
        }
        string sockets = Path.Combine(sc, "ns", "srv", "sockets");
        string extra = rmem is int r ? $" rcvbuf {r}" : "";
        File.WriteAllText(sockets, File.ReadAllText(sockets).Replace("tcp listen 10.0.0.2:5201", "tcp listen 10.0.0.2:5201 cpu 1" + extra));
        var options = new ScenarioOptions
        {
            Replay = new Softnet.Pipeline.ReplayOptions { Gro = null, Cpus = [0, 1], PollCostNs = 4000, ReaderNsPerByte = nsPerByte, ReaderNsPerRead = nsPerRead },
        };
        using var report = ScenarioReplay.Run(sc, pcap, "srv:vs", Path.Combine(dir, "out-" + name), options);
        var srv = report.Scenario.Namespace("srv")!;
        var listener = srv.Sockets.All.OfType<TcpListenSock>().Single();
        var rec = listener.Accepted.Single().Record!;
        Assert.True(srv.Counters.Conserved);
        return new Run(rec.Bytes, rec.End, srv.Mib[SnmpCounter.TcpInSegs], srv.Mib[SnmpCounter.TcpOutSegs],
            srv.Mib[SnmpCounter.TcpExtTCPBacklogCoalesce], srv.Mib[SnmpCounter.TcpExtTCPBacklogDrop]);
    }

    private static string Capture(string dir, long bytes, double bps)
    {
        string pcap = Path.Combine(dir, "gen.pcap");
        using var w = CaptureWriter.Create(pcap);
        new TrafficGenerator([new GeneratorOptions { Bytes = bytes, Rate = Rate.FromBits(bps), ServerKey = 0 }]).WriteTo(w);
        return pcap;
    }

    /// <summary>A reader slow enough that segments arrive while it copies: they are coalesced in the backlog and
    /// acknowledged once per coalesced run, so fewer ACKs than the prompt reader's one per two segments; the stream
    /// still arrives whole.</summary>
    [Fact]
    public void A_slow_reader_coalesces_the_backlog_and_acks_less()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-sockbacklog-").FullName;
        string pcap = Capture(dir, 2 * 1024 * 1024, 1e9);
        var prompt = Replay(dir, pcap, "prompt", 0, 0);
        var slow = Replay(dir, pcap, "slow", 2, 20_000);
        output.WriteLine($"prompt {prompt}\nslow   {slow}");
        Assert.Equal(2 * 1024 * 1024, prompt.Bytes);
        Assert.Equal(2 * 1024 * 1024, slow.Bytes);
        Assert.Equal("fin", slow.End);
        Assert.Equal(0, prompt.Coalesced);
        Assert.True(slow.Coalesced > 0, $"no backlog coalescing: {slow}");
        Assert.Equal(0, slow.BacklogDrops);
        Assert.True(slow.OutSegs < prompt.OutSegs, $"ACKs: slow reader {slow.OutSegs}, prompt {prompt.OutSegs}");
    }

    /// <summary>Whatever the reader's pace, the backlog hands every segment to the receive path in order: the stream
    /// arrives whole and nothing is dropped while the limit is not reached.</summary>
    [Theory]
    [InlineData(1.0, 5_000L)]
    [InlineData(4.0, 50_000L)]
    [InlineData(0.5, 200_000L)]
    public void The_stream_arrives_whole_at_any_reader_pace(double nsPerByte, long nsPerRead)
    {
        string dir = Directory.CreateTempSubdirectory("softnet-sockbacklog-pace-").FullName;
        string pcap = Capture(dir, 1024 * 1024, 1e9);
        var run = Replay(dir, pcap, "pace", nsPerByte, nsPerRead);
        output.WriteLine($"{nsPerByte} ns/B {nsPerRead} ns/read: {run}");
        Assert.Equal(1024 * 1024, run.Bytes);
        Assert.Equal("fin", run.End);
        Assert.Equal(0, run.BacklogDrops);
        Assert.InRange(run.Coalesced, 0, run.InSegs);
    }

    /// <summary>A small receive buffer bounds the backlog (sk_rcvqueues_full against tcp_add_backlog's limit): past it
    /// segments are dropped with TCPBacklogDrop, the sender's retransmissions never come (an open-loop capture), so
    /// the stream ends short.</summary>
    [Fact]
    public void The_backlog_limit_drops_past_the_receive_buffer()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-sockbacklog-limit-").FullName;
        string pcap = Capture(dir, 4 * 1024 * 1024, 5e9);
        var slow = Replay(dir, pcap, "tiny", 20, 2_000_000, rmem: 4096);
        output.WriteLine($"tiny {slow}");
        Assert.True(slow.BacklogDrops > 0, $"no backlog drop: {slow}");
        Assert.True(slow.Bytes < 4 * 1024 * 1024);
    }
}
