using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Nic;
using Softnet.Pipeline;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Helpers;
using Xunit;

namespace Softnet.Tests.Xdp;

/// <summary>An eBPF program attached to every queue of a replay: verdicts, the tx capture, redirects, and the helpers'
/// per-queue state (NAPI CPU, replay clock).</summary>
public class XdpBpfAttachmentTests
{
    private static readonly GeneratorOptions Tiny = new() { Streams = 4, Bytes = 256 * 1024, Seed = 11 };

    private static BpfProgram Load(string text)
        => BpfVerifier.Verify(BpfAssembler.Assemble(text, "test"), BpfVerifierOptions.Xdp(BpfXdpHelpers.Table()));

    private const string SwapMacsAndTx = """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        jgt %r4, %r3, drop
        ldxw %r5, [%r2+0]
        ldxh %r6, [%r2+4]
        ldxw %r7, [%r2+6]
        ldxh %r8, [%r2+10]
        stxw [%r2+0], %r7
        stxh [%r2+4], %r8
        stxw [%r2+6], %r5
        stxh [%r2+10], %r6
        mov %r0, 3
        exit
        drop:
        mov %r0, 1
        exit
        """;

    private static List<(long TimestampNs, byte[] Frame)> Input()
    {
        using var g = new GeneratorCaptureReader(Tiny);
        return MemoryCaptureReader.Load(g);
    }

    [Fact]
    public void Xdp_tx_frames_leave_through_the_tx_capture_as_the_program_left_them()
    {
        var input = Input();
        string path = Path.Combine(Path.GetTempPath(), $"softnet-xdp-tx-{Guid.NewGuid():N}.pcap");
        try
        {
            var attach = new XdpBpfAttachment(Load(SwapMacsAndTx));
            var pipeline = new ReplayPipeline(new ReplayOptions { Nic = new NicOptions { XdpAttachment = attach, Queues = 2 }, Cpus = [0, 1], XdpTxPath = path });
            var report = pipeline.Run(new MemoryCaptureReader(input), "test");
            Assert.Equal(input.Count, report.PacketsIn);
            Assert.Equal(input.Count, report.XdpTx);
            Assert.Equal(0, report.Delivered);
            Assert.True(report.Conserved);
            Assert.Equal(2, attach.Hooks.Count);
            Assert.Contains("rx_xdp_tx: " + input.Count, Softnet.Telemetry.NicReportSection.EthtoolText(pipeline.Nic!));

            using var r = CaptureReader.Open(path);
            var sent = MemoryCaptureReader.Load(r);
            Assert.Equal(input.Count, sent.Count);
            // Queues send in their own order; as a multiset the frames are the inputs with the MACs swapped.
            static string Key(byte[] f) => Convert.ToHexString(f);
            var expected = input.Select(x =>
            {
                var f = (byte[])x.Frame.Clone();
                x.Frame.AsSpan(0, 6).CopyTo(f.AsSpan(6));
                x.Frame.AsSpan(6, 6).CopyTo(f);
                return Key(f);
            }).Order().ToList();
            Assert.Equal(expected, sent.Select(s => Key(s.Frame)).Order().ToList());
        }
        finally { File.Delete(path); }
    }

    private sealed class Sink : IXdpTransmit
    {
        public readonly List<byte[]> Frames = [];
        public bool Transmit(ReadOnlySpan<byte> frame, long nowNs)
        {
            Frames.Add(frame.ToArray());
            return true;
        }
    }

    [Fact]
    public void Xdp_redirect_goes_to_the_device_the_ifindex_names_and_an_unknown_one_is_an_error()
    {
        var input = Input();
        var dev7 = new Sink();
        // Frames whose first byte is even go to ifindex 7, the others to ifindex 9, which does not exist.
        const string text = """
            ldxw %r2, [%r1+0]
            ldxw %r3, [%r1+4]
            mov %r4, %r2
            add %r4, 14
            jgt %r4, %r3, drop
            ldxb %r5, [%r2+13]
            and %r5, 1
            mov %r1, 7
            jeq %r5, 0, go
            mov %r1, 9
            go:
            mov %r2, 0
            call 23
            exit
            drop:
            mov %r0, 1
            exit
            """;
        var attach = new XdpBpfAttachment(Load(text)) { Devices = i => i == 7 ? dev7 : null };
        var pipeline = new ReplayPipeline(new ReplayOptions { Nic = new NicOptions { XdpAttachment = attach } });
        var report = pipeline.Run(new MemoryCaptureReader(input), "test");
        int even = input.Count(f => (f.Frame[13] & 1) == 0);
        Assert.Equal(input.Count, report.XdpRedirect);
        Assert.Equal(even, dev7.Frames.Count);
        var q = pipeline.Nic!.Queues[0];
        Assert.Equal(input.Count - even, q.Xdp.RedirectErrors);
        Assert.True(report.Conserved);
    }

    [Fact]
    public void Each_queue_runs_on_its_napi_cpu_with_the_replay_clock()
    {
        var input = Input();
        var w = new StringWriter();
        // bpf_trace_printk("q=%u cpu=%u t=%llu", rx_queue_index, smp_processor_id(), ktime_get_ns()); XDP_PASS
        string fmt = "q=%u cpu=%u t=%llu";
        var bytes = System.Text.Encoding.ASCII.GetBytes(fmt + "\0");
        int size = (bytes.Length + 7) & ~7;
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < bytes.Length; i++) sb.AppendLine($"stb [%r10-{size - i}], {bytes[i]}");
        string text = sb + $"""
            ldxw %r6, [%r1+16]
            call 8
            mov %r7, %r0
            call 5
            mov %r5, %r0
            mov %r1, %r10
            add %r1, -{size}
            mov %r2, {size}
            mov %r3, %r6
            mov %r4, %r7
            call 6
            mov %r0, 2
            exit
            """;
        var attach = new XdpBpfAttachment(Load(text)) { Trace = w };
        var report = new ReplayPipeline(new ReplayOptions { Nic = new NicOptions { XdpAttachment = attach, Queues = 2 }, Cpus = [0, 1] })
            .Run(new MemoryCaptureReader(input), "test");
        Assert.Equal(input.Count, report.Delivered);
        var lines = w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(input.Count, lines.Length);
        long first = input[0].TimestampNs;
        var arrivals = input.Select(f => 1 + f.TimestampNs - first).ToHashSet();
        foreach (var line in lines)
        {
            var m = System.Text.RegularExpressions.Regex.Match(line, @"\[(\d{3})\] .*bpf_trace_printk: q=(\d) cpu=(\d) t=(\d+)$");
            Assert.True(m.Success, line);
            Assert.Equal(m.Groups[2].Value, m.Groups[3].Value); // queue i is polled on CPU i
            Assert.Equal(int.Parse(m.Groups[1].Value), int.Parse(m.Groups[3].Value));
            Assert.Contains(long.Parse(m.Groups[4].Value), arrivals); // the replay clock at the frame's arrival
        }
    }

    [Fact]
    public void Xdp_pass_hands_up_the_frame_as_the_helpers_left_it()
    {
        // Frames that leave skb_shared_info's 320 bytes free in a 2048-byte buffer after 256 of headroom (a full-size
        // frame does not, so growing it is refused as the kernel refuses past xdp_data_hard_end).
        var input = Input().Where(f => f.Frame.Length <= 2048 - 256 - 320 - 4).ToList();
        Assert.NotEmpty(input);
        string path = Path.Combine(Path.GetTempPath(), $"softnet-xdp-tap-{Guid.NewGuid():N}.pcap");
        try
        {
            // bpf_xdp_adjust_tail(ctx, 4); XDP_PASS: every frame reaches the stack with 4 zero bytes more (trailer
            // padding the IP layer trims).
            var attach = new XdpBpfAttachment(Load("mov %r2, 4\ncall 65\nmov %r0, 2\nexit"));
            var report = new ReplayPipeline(new ReplayOptions { Nic = new NicOptions { XdpAttachment = attach }, Gro = null, TapPath = path })
                .Run(new MemoryCaptureReader(input), "test");
            Assert.Equal(input.Count, report.Delivered);
            using var r = CaptureReader.Open(path);
            var seen = MemoryCaptureReader.Load(r);
            Assert.Equal(input.Select(f => f.Frame.Length + 4), seen.Select(f => f.Frame.Length));
            Assert.True(input.Zip(seen).All(p => p.First.Frame.Concat(new byte[4]).SequenceEqual(p.Second.Frame)));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void The_cli_names_a_missing_object()
    {
        var e = Assert.Throws<FileNotFoundException>(() => Softnet.Cli.ReplayCommand.LoadXdpObject("/nonexistent/prog.o:xdp"));
        Assert.Contains("/nonexistent/prog.o", e.Message);
    }

    [Theory]
    [InlineData("prog.o", "prog.o", null)]
    [InlineData("prog.o:xdp", "prog.o", "xdp")]
    [InlineData("dir/a.b.o:xdp/drop", "dir/a.b.o", "xdp/drop")]
    [InlineData("prog.o:", "prog.o", null)]
    public void An_object_argument_splits_at_the_section(string spec, string path, string? section)
    {
        Assert.Equal((path, section), XdpBpfAttachment.ParseSpec(spec));
    }

    [Theory]
    [InlineData("jit")]
    [InlineData("interp")]
    public void Replay_runs_a_clang_built_object_with_its_maps_on_every_queue(string engine)
    {
        string obj = Softnet.Tests.Xdp.Bpf.Elf.BpfTestPrograms.Object("drop_port");
        var input = new List<(long TimestampNs, byte[] Frame)>();
        for (int i = 0; i < 200; i++)
        {
            var f = Softnet.Tests.Xdp.Bpf.Elf.BpfTestPrograms.Udp4(i % 4 == 0 ? (ushort)9 : (ushort)(1000 + i));
            f[26 + 3] = (byte)i; // vary the source address so RSS spreads the frames over the queues
            input.Add((i * 1000L, f));
        }
        var attach = (XdpBpfAttachment)Softnet.Cli.ReplayCommand.LoadXdpObject(obj + ":xdp",
            engine == "jit" ? BpfEngine.Jit : BpfEngine.Interpreter);
        var pipeline = new ReplayPipeline(new ReplayOptions { Nic = new NicOptions { XdpAttachment = attach, Queues = 2 }, Cpus = [0, 1], Gro = null });
        var report = pipeline.Run(new MemoryCaptureReader(input), "test");
        Assert.True(report.Conserved);
        Assert.Equal(150, report.Delivered);
        Assert.Equal(2, attach.Hooks.Count);
        var verdicts = attach.Object!.Map("verdicts")!;
        Assert.Equal(50UL, Softnet.Tests.Xdp.Bpf.Elf.BpfTestPrograms.U64(verdicts, 1));
        Assert.Equal(150UL, Softnet.Tests.Xdp.Bpf.Elf.BpfTestPrograms.U64(verdicts, 2));
    }
}
