using System.Buffers.Binary;
using System.Text.Json;
using Softnet.Capture;
using Softnet.Tests.Xdp.Bpf.Elf;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Helpers;
using Xunit;

namespace Softnet.Tests.Xdp;

/// <summary>
/// XdpTestRun: a program run per capture frame as BPF_PROG_TEST_RUN runs it — the buffer's headroom and tailroom,
/// the frame size limits, the ctx's ifindex and queue, the verdict counts, the output frames and their timestamps,
/// faults counted as aborted and reported once, and the maps afterwards.
/// </summary>
public class XdpTestRunTests
{
    private static BpfProgram Asm(string text)
        => BpfVerifier.Verify(BpfAssembler.Assemble(text, "test"), BpfVerifierOptions.Xdp(BpfXdpHelpers.Table()));

    private static XdpTestRun Runner(BpfProgram p, BpfEngine engine = BpfEngine.Interpreter, XdpTestRunOptions? o = null)
        => new(null, p, "xdp", (o ?? new XdpTestRunOptions()) with { Engine = engine });

    private static byte[] Frame(int length, byte first = 0)
    {
        var f = new byte[length];
        for (int i = 0; i < length; i++) f[i] = (byte)(i + 7);
        f[0] = first;
        return f;
    }

    // Returns the frame's first byte as the verdict (XDP_ABORTED when the frame is empty).
    private const string FirstByteVerdict = """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 1
        jgt %r4, %r3, out
        ldxb %r0, [%r2+0]
        exit
        out:
        mov %r0, 0
        exit
        """;

    public static TheoryData<BpfEngine> Engines => new() { BpfEngine.Interpreter, BpfEngine.Jit };

    [Theory]
    [MemberData(nameof(Engines))]
    public void Verdicts_are_counted_and_an_unknown_return_is_aborted(BpfEngine engine)
    {
        var run = Runner(Asm(FirstByteVerdict), engine);
        foreach (byte v in new byte[] { 0, 1, 1, 2, 2, 2, 3, 4, 4, 9 })
            run.RunFrame(Frame(60, v), 0, out _);
        Assert.Equal((2, 2, 3, 1, 2), (run.Aborted, run.Drop, run.Pass, run.Tx, run.Redirect));
        Assert.Equal(1, run.InvalidActions);
        Assert.Equal(10, run.Frames);
        Assert.Equal(0, run.FaultedFrames);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void The_program_sees_the_ctx_ingress_ifindex_and_rx_queue(BpfEngine engine)
    {
        // Writes xdp_md.ingress_ifindex and rx_queue_index into the first two bytes, then passes.
        var p = Asm("""
            ldxw %r2, [%r1+0]
            ldxw %r3, [%r1+4]
            mov %r4, %r2
            add %r4, 2
            jgt %r4, %r3, out
            ldxw %r5, [%r1+12]
            stxb [%r2+0], %r5
            ldxw %r5, [%r1+16]
            stxb [%r2+1], %r5
            out:
            mov %r0, 2
            exit
            """);
        var a = Runner(p, engine);
        a.RunFrame(Frame(60), 0, out var f1);
        Assert.Equal(new byte[] { 1, 0 }, f1[..2].ToArray()); // no ctx: lo, queue 0
        var b = Runner(p, engine, new XdpTestRunOptions { Ifindex = 7, RxQueue = 3 });
        b.RunFrame(Frame(60), 0, out var f2);
        Assert.Equal(new byte[] { 7, 3 }, f2[..2].ToArray());
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void Headroom_is_256_bytes_of_zeros_and_data_out_starts_at_data_meta(BpfEngine engine)
    {
        // Push 8 bytes at the head and 4 bytes of metadata in front of it.
        var p = Asm("""
            mov %r6, %r1
            mov %r2, -8
            call 44
            mov %r1, %r6
            mov %r2, -4
            call 54
            mov %r0, 2
            exit
            """);
        var frame = Frame(60, 0xAA);
        var run = Runner(p, engine);
        Assert.Equal(XdpAction.Pass, run.RunFrame(frame, 0, out var outFrame));
        Assert.Equal(68, outFrame.Length);
        Assert.True(outFrame[..8].SequenceEqual(new byte[8]));
        Assert.True(outFrame[8..].SequenceEqual(frame));

        var withMeta = Runner(p, engine, new XdpTestRunOptions { WithMeta = true });
        withMeta.RunFrame(frame, 0, out var dataOut);
        Assert.Equal(72, dataOut.Length);
        Assert.True(dataOut[12..].SequenceEqual(frame));

        // The whole headroom but the xdp_frame's 40 bytes can be pushed, and it reads as zero, frame after frame.
        var deep = Asm($"""
            mov %r2, {-(XdpAdjust.PacketHeadroom - XdpAdjust.XdpFrameSize)}
            call 44
            jne %r0, 0, bad
            mov %r0, 2
            exit
            bad:
            mov %r0, 1
            exit
            """);
        var d = Runner(deep, engine);
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(XdpAction.Pass, d.RunFrame(Frame(100, 0xFF), 0, out var grown));
            Assert.Equal(100 + 216, grown.Length);
            Assert.True(grown[..216].SequenceEqual(new byte[216]));
        }
    }

    private static BpfProgram GrowTail(int delta) => Asm($"""
        mov %r2, {delta}
        call 65
        jne %r0, 0, bad
        mov %r0, 2
        exit
        bad:
        mov %r0, 1
        exit
        """);

    [Theory]
    [MemberData(nameof(Engines))]
    public void The_linear_limit_is_a_page_less_headroom_and_shared_info(BpfEngine engine)
    {
        Assert.Equal(3520, XdpTestRun.MaxLinear);
        // The tail may grow up to 3520 bytes, no further; the grown bytes are zero.
        var ok = Runner(GrowTail(3520 - 100), engine);
        Assert.Equal(XdpAction.Pass, ok.RunFrame(Frame(100), 0, out var grown));
        Assert.Equal(3520, grown.Length);
        Assert.True(grown[100..].ToArray().All(b => b == 0));
        Assert.Equal(XdpAction.Drop, Runner(GrowTail(3520 - 100 + 1), engine).RunFrame(Frame(100), 0, out _));

        // Frames the kernel refuses (under ETH_HLEN) or would split into frags (over 3520) are skipped.
        var run = Runner(Asm("mov %r0, 2\nexit"), engine);
        Assert.Null(run.RunFrame(Frame(13), 0, out _));
        Assert.Equal(XdpAction.Pass, run.RunFrame(Frame(14), 0, out _));
        Assert.Equal(XdpAction.Pass, run.RunFrame(Frame(3520), 0, out _));
        Assert.Null(run.RunFrame(Frame(3521), 0, out _));
        Assert.Equal((1, 1, 2, 4), (run.SkippedTooShort, run.SkippedTooLong, run.Frames, run.FramesIn));
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void A_fault_is_aborted_and_reported_once_with_its_instruction(BpfEngine engine)
    {
        // Not verifiable: reads past data_end; the VM faults at instruction 1.
        var past = new BpfProgram(BpfAssembler.Assemble("ldxdw %r2, [%r1+0]\nldxb %r0, [%r2+4000]\nexit", "past"), BpfVerifierOptions.Xdp(), 0);
        var run = Runner(past, engine);
        for (int i = 0; i < 5; i++) run.RunFrame(Frame(60), 0, out _);
        Assert.Equal(5, run.Aborted);
        Assert.Equal(5, run.FaultedFrames);
        var f = Assert.Single(run.Faults);
        Assert.Equal(BpfFault.MemoryAccess, f.Fault);
        Assert.Equal("xdp:1", run.Where(f));
        Assert.Equal((1L, 5L), (f.FirstFrame, f.Frames));
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void Ktime_is_the_frames_capture_timestamp(BpfEngine engine)
    {
        // Stores bpf_ktime_get_ns() in the first 8 bytes.
        var p = Asm("""
            mov %r6, %r1
            call 5
            ldxw %r2, [%r6+0]
            ldxw %r3, [%r6+4]
            mov %r4, %r2
            add %r4, 8
            jgt %r4, %r3, out
            stxdw [%r2+0], %r0
            out:
            mov %r0, 2
            exit
            """);
        var run = Runner(p, engine);
        run.RunFrame(Frame(60), 1_700_000_000_123_456_789, out var f);
        Assert.Equal(1_700_000_000_123_456_789UL, BinaryPrimitives.ReadUInt64LittleEndian(f));
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void Drop_port_over_a_capture_writes_the_passed_frames_and_counts_in_its_map(BpfEngine engine)
    {
        var frames = new List<(long, byte[])>();
        for (int i = 0; i < 7; i++) frames.Add((1_000_000_000L * (i + 1) + i, BpfTestPrograms.Udp4(i % 3 == 0 ? (ushort)9 : (ushort)(1000 + i), 10 + i)));
        var run = XdpTestRun.Load(BpfTestPrograms.Object("drop_port"), new XdpTestRunOptions { Engine = engine });
        var ms = new MemoryStream();
        using (var w = new PcapngWriter(ms, [new CaptureInterface(LinkType.Ethernet, 65535, null, 1_000_000_000)], ownsStream: false))
            run.Run(new MemoryCaptureReader(frames), w);
        Assert.Equal((3L, 4L, 0L), (run.Drop, run.Pass, run.Aborted));
        Assert.Equal(4, run.FramesWritten);
        ms.Position = 0;
        var back = MemoryCaptureReader.Load(CaptureReader.Open(ms));
        Assert.Equal(frames.Where((_, i) => i % 3 != 0).Select(f => f.Item1), back.Select(b => b.TimestampNs));
        Assert.Equal(frames.Where((_, i) => i % 3 != 0).Select(f => Convert.ToHexString(f.Item2)), back.Select(b => Convert.ToHexString(b.Frame)));

        var dir = Directory.CreateTempSubdirectory("softnet-xdptest-");
        try
        {
            var files = run.WriteMaps(dir.FullName);
            Assert.Equal(Path.Combine(dir.FullName, "verdicts.json"), Assert.Single(files));
            var dump = JsonDocument.Parse(File.ReadAllText(files[0])).RootElement;
            Assert.Equal(4, dump.GetArrayLength());
            ulong Value(int key) => BinaryPrimitives.ReadUInt64LittleEndian(dump[key].GetProperty("value").EnumerateArray()
                .Select(b => Convert.ToByte(b.GetString()![2..], 16)).ToArray());
            Assert.Equal(3UL, Value(1)); // XDP_DROP
            Assert.Equal(4UL, Value(2)); // XDP_PASS
            // The map has BTF (__type(key, __u32), __type(value, __u64)): bpftool's "formatted" member follows.
            Assert.Contains("\"formatted\":{\"key\":1,\"value\":3}", File.ReadAllText(files[0]));
            var summary = new MemoryStream();
            run.WriteSummary(summary, "drop_port.o", "mem");
            var s = JsonDocument.Parse(summary.ToArray()).RootElement;
            Assert.Equal(7, s.GetProperty("frames").GetInt64());
            Assert.Equal(3, s.GetProperty("verdicts").GetProperty("drop").GetInt64());
            Assert.Equal(4, s.GetProperty("maps").GetProperty("verdicts").GetProperty("entries").GetInt64());
            Assert.Equal(engine == BpfEngine.Jit ? "jit" : "interp", s.GetProperty("engine").GetString());
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Global_data_maps_are_dumped_under_their_libbpf_names()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-xdptest-");
        try
        {
            // libbpf names an object after its file, up to the first '.'; the maps are "<obj>.data" etc.
            string obj = Path.Combine(dir.FullName, "globals.o");
            File.Copy(BpfTestPrograms.Object("globals"), obj);
            var run = XdpTestRun.Load(obj);
            run.RunFrame(Frame(40), 0, out _);
            run.RunFrame(Frame(80), 0, out _);
            Assert.Equal((1L, 1L), (run.Drop, run.Pass));
            var names = run.WriteMaps(Path.Combine(dir.FullName, "maps")).Select(f => Path.GetFileName(f)).Order().ToArray();
            Assert.Equal(["globals.bss.json", "globals.data.json", "globals.rodata.json"], names);
            var data = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.FullName, "maps", "globals.data.json"))).RootElement;
            Assert.Equal("0x66", data[0].GetProperty("value")[0].GetString()); // seen: 100 + 2
            // bpftool's BTF view of global data: the section's variables in offset order (libbpf fixes them up).
            string F(string n) => File.ReadAllText(Path.Combine(dir.FullName, "maps", n));
            Assert.EndsWith(",\"formatted\":{\"value\":{\".data\":[{\"seen\":102}]}}}]\n", F("globals.data.json"));
            Assert.EndsWith(",\"formatted\":{\"value\":{\".bss\":[{\"last_len\":80},{\"short_frames\":1}]}}}]\n", F("globals.bss.json"));
            Assert.EndsWith(",\"formatted\":{\"value\":{\".rodata\":[{\"min_len\":60}]}}}]\n", F("globals.rodata.json"));
        }
        finally { dir.Delete(true); }
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void Ring_buffer_records_go_to_a_file_as_length_and_bytes(BpfEngine engine)
    {
        var run = XdpTestRun.Load(BpfTestPrograms.Object("ringbuf_eth"), new XdpTestRunOptions { Engine = engine });
        // 4096 bytes of ring hold 170 records of 16 bytes of data (24 with the header); the rest are dropped.
        for (int i = 0; i < 200; i++) run.RunFrame(Frame(60 + i, (byte)i), 0, out _);
        var dir = Directory.CreateTempSubdirectory("softnet-xdptest-");
        try
        {
            var files = run.WriteMaps(Path.Combine(dir.FullName, "maps"), Path.Combine(dir.FullName, "rb"));
            string bin = Path.Combine(dir.FullName, "rb", "events.bin");
            Assert.Equal([bin], files);
            var bytes = File.ReadAllBytes(bin);
            Assert.Equal(170 * (4 + 16), bytes.Length);
            for (int i = 0; i < 170; i++)
            {
                var rec = bytes.AsSpan(i * 20, 20);
                Assert.Equal(16u, BinaryPrimitives.ReadUInt32LittleEndian(rec));
                Assert.Equal((byte)i, rec[4]);
                Assert.Equal(60 + i, BinaryPrimitives.ReadUInt16LittleEndian(rec[18..]));
            }
            Assert.Equal(170, run.RingbufRecords["events"]);
            var summary = new MemoryStream();
            run.WriteSummary(summary, "ringbuf_eth.o", "mem");
            var m = JsonDocument.Parse(summary.ToArray()).RootElement.GetProperty("maps").GetProperty("events");
            Assert.Equal("ringbuf", m.GetProperty("type").GetString());
            Assert.Equal(170, m.GetProperty("records").GetInt32());
            Assert.Equal(30, m.GetProperty("dropped").GetInt64());
        }
        finally { dir.Delete(true); }
    }
}
