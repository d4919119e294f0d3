using System.Text.Json;
using Softnet.Capture;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Elf;
using Softnet.Xdp.Bpf.Maps;

namespace Softnet.Xdp;

/// <summary>How <see cref="XdpTestRun"/> runs each frame: the xdp_md ctx a BPF_PROG_TEST_RUN caller would pass.</summary>
public sealed record XdpTestRunOptions
{
    /// <summary>xdp_md.ingress_ifindex. Without a ctx the kernel runs the frame on the loopback device's queue 0, so 1.</summary>
    public int Ifindex { get; init; } = 1;

    /// <summary>xdp_md.rx_queue_index.</summary>
    public int RxQueue { get; init; }

    public BpfEngine Engine { get; init; } = BpfEngine.Jit;

    /// <summary>The CPU the runs are on (per-CPU maps, bpf_get_smp_processor_id).</summary>
    public int Cpu { get; init; }

    /// <summary>Seed of bpf_get_prandom_u32.</summary>
    public ulong Seed { get; init; }

    /// <summary>Where bpf_trace_printk lines go, or null.</summary>
    public TextWriter? Trace { get; init; }

    /// <summary>
    /// Output frames as BPF_PROG_TEST_RUN's data_out holds them: from data_meta, so any metadata the program pushed
    /// comes first. False (the default) writes the frame from data, as a device would send or pass it on.
    /// </summary>
    public bool WithMeta { get; init; }

    /// <summary>CPUs of the per-CPU maps (0: this machine's possible CPUs, as libbpf's libbpf_num_possible_cpus).</summary>
    public int PossibleCpus { get; init; }
}

/// <summary>One distinct fault of a test run: where, how often, and the first frame that hit it.</summary>
public sealed record XdpTestRunFault(BpfFault Fault, int Pc, long FirstFrame)
{
    public long Frames { get; set; }
}

/// <summary>
/// `softnet xdp test`: an object's XDP program run once per frame of a capture as BPF_PROG_TEST_RUN runs it
/// (net/bpf/test_run.c bpf_prog_test_run_xdp, without BPF_F_TEST_XDP_LIVE_FRAMES). Each frame gets a fresh zeroed
/// page: XDP_PACKET_HEADROOM (256) bytes of headroom, the frame, and the skb_shared_info tailroom (320) at the end
/// of the 4096-byte frame, so at most 3520 bytes are linear; data_meta starts at data. The program sees the ctx's
/// ingress_ifindex and rx_queue_index. What comes back (data_out) is data_meta..data_end after the program, whatever
/// the verdict; the kernel neither transmits nor redirects in this mode, so TX and REDIRECT are just verdicts here
/// too, with their frames written out like PASS. The object's maps live across frames, as they do across test runs.
/// Frames the kernel refuses (shorter than ETH_HLEN, -EINVAL) or could only run as a multi-buffer xdp.frags buffer
/// (longer than the linear 3520 bytes), and frames of a non-Ethernet link, are skipped and counted.
/// </summary>
public sealed class XdpTestRun
{
    /// <summary>PAGE_SIZE: the buffer test_run allocates (headroom + linear data + tailroom).</summary>
    public const int FrameSize = 4096;
    public const int MaxLinear = FrameSize - XdpAdjust.PacketHeadroom - XdpAdjust.SkbSharedInfoSize;

    private readonly byte[] _buffer = new byte[FrameSize];
    private readonly BpfInterpreter? _vm;
    private readonly BpfJitProgram? _jit;
    private readonly BpfJitStack? _jitStack;
    private readonly BpfRunContext _ctx;
    private long _nowNs;
    private readonly Dictionary<(BpfFault, int), XdpTestRunFault> _faults = [];

    /// <summary>A run of <paramref name="program"/> (named <paramref name="section"/> in faults) with the maps of
    /// <paramref name="obj"/>, or of the program's verifier options when it came from no object.</summary>
    public XdpTestRun(BpfObject? obj, BpfProgram program, string section, XdpTestRunOptions? options = null)
    {
        Object = obj;
        Space = obj?.Space ?? program.Options.Maps;
        Program = program;
        Section = section;
        Options = options ?? new XdpTestRunOptions();
        if (Options.Engine == BpfEngine.Jit)
        {
            _jit = BpfJit.Compile(program);
            _jitStack = new BpfJitStack();
        }
        else _vm = new BpfInterpreter();
        _ctx = new BpfRunContext { Cpu = Options.Cpu, Seed = Options.Seed, TraceWriter = Options.Trace };
        _ctx.NowNs = () => (ulong)_nowNs;
    }

    /// <summary>Loads "PROG.o[:SECTION]" as <see cref="XdpBpfAttachment.LoadProgram"/> does (an <see cref="ArgumentException"/>
    /// naming file, section and instruction when the object or program is bad).</summary>
    public static XdpTestRun Load(string spec, XdpTestRunOptions? options = null)
    {
        options ??= new XdpTestRunOptions();
        var (obj, prog) = XdpBpfAttachment.LoadProgram(spec, options.PossibleCpus > 0 ? options.PossibleCpus : Bpf.Maps.BpfMapFactory.PossibleCpus());
        var (_, name) = XdpBpfAttachment.ParseSpec(spec);
        return new XdpTestRun(obj, prog, obj.Program(name).Section, options) { MapBtf = BpfMapBtf.ForObject(obj) };
    }

    /// <summary>The BTF each map keeps in the kernel, by map name: their dumps add bpftool's "formatted" member.</summary>
    public IReadOnlyDictionary<string, BpfMapBtf> MapBtf { get; init; } = new Dictionary<string, BpfMapBtf>();

    public BpfObject? Object { get; }
    private BpfRegionTable? Space { get; }
    private IEnumerable<BpfMap> Maps => Object?.Maps ?? (IEnumerable<BpfMap>)[];
    public BpfProgram Program { get; }
    public string Section { get; }
    public XdpTestRunOptions Options { get; }

    // Counts, as the summary reports them.
    /// <summary>Frames read (run or skipped); a fault's first frame is numbered among these from 1, as Wireshark numbers them.</summary>
    public long FramesIn;
    /// <summary>Frames run, and their verdicts.</summary>
    public long Frames, Aborted, Drop, Pass, Tx, Redirect;
    /// <summary>Runs that returned no XDP action (counted as aborted too, as bpf_warn_invalid_xdp_action makes them).</summary>
    public long InvalidActions;
    /// <summary>Runs that faulted (counted as aborted).</summary>
    public long FaultedFrames;
    public long SkippedTooShort, SkippedTooLong, SkippedNotEthernet;
    public long FramesWritten;

    public long Skipped => SkippedTooShort + SkippedTooLong + SkippedNotEthernet;

    /// <summary>Each distinct fault (kind and instruction) once, in the order first seen.</summary>
    public IEnumerable<XdpTestRunFault> Faults => _faults.Values.OrderBy(f => f.FirstFrame);

    /// <summary>"xdp:12" for a fault's instruction.</summary>
    public string Where(XdpTestRunFault f) => $"{Section}:{f.Pc}";

    /// <summary>
    /// Runs the program on one frame; returns the verdict and the output frame (valid until the next call), or null
    /// when the frame was skipped (<paramref name="output"/> is then empty).
    /// </summary>
    public XdpAction? RunFrame(ReadOnlySpan<byte> frame, long timestampNs, out ReadOnlySpan<byte> output)
    {
        output = default;
        FramesIn++;
        if (frame.Length < XdpAdjust.EthHlen)
        {
            SkippedTooShort++;
            return null;
        }
        if (frame.Length > MaxLinear)
        {
            SkippedTooLong++;
            return null;
        }
        Frames++;
        // bpf_test_init: kzalloc'd, so headroom the program may grow into and the tail it may extend read as zero.
        Array.Clear(_buffer);
        frame.CopyTo(_buffer.AsSpan(XdpAdjust.PacketHeadroom));
        var xdp = new XdpBuff(_buffer, XdpAdjust.PacketHeadroom, frame.Length, Options.RxQueue, XdpAdjust.SkbSharedInfoSize);
        _nowNs = timestampNs;
        _ctx.ClearRedirect(); // each run gets a fresh bpf_net_context
        BpfRunResult r;
        var action = _jit is not null
            ? _jit.RunXdp(_jitStack!, ref xdp, (uint)Options.Ifindex, _ctx, Space, out r)
            : _vm!.RunXdp(Program, ref xdp, (uint)Options.Ifindex, _ctx, Space, out r);
        if (!r.Ok)
        {
            FaultedFrames++;
            if (_faults.TryGetValue((r.Fault, r.Pc), out var f)) f.Frames++;
            else _faults[(r.Fault, r.Pc)] = new XdpTestRunFault(r.Fault, r.Pc, FramesIn) { Frames = 1 };
        }
        else if (r.R0 > (ulong)XdpAction.Redirect) InvalidActions++;
        switch (action)
        {
            case XdpAction.Pass: Pass++; break;
            case XdpAction.Drop: Drop++; break;
            case XdpAction.Tx: Tx++; break;
            case XdpAction.Redirect: Redirect++; break;
            default: Aborted++; break;
        }
        output = Options.WithMeta ? _buffer.AsSpan(xdp.DataMeta, xdp.DataEnd - xdp.DataMeta) : xdp.Packet;
        return action;
    }

    /// <summary>Every frame of <paramref name="input"/>; PASS, TX and REDIRECT frames go to <paramref name="output"/>
    /// with their input timestamps.</summary>
    public void Run(ICaptureReader input, ICaptureWriter? output)
    {
        while (input.TryRead(out var meta, out var data))
        {
            if (meta.LinkType != LinkType.Ethernet)
            {
                FramesIn++;
                SkippedNotEthernet++;
                continue;
            }
            var action = RunFrame(data, meta.TimestampNs, out var frame);
            if (action is XdpAction.Pass or XdpAction.Tx or XdpAction.Redirect && output is not null)
            {
                output.Write(meta.TimestampNs, frame);
                FramesWritten++;
            }
        }
    }

    /// <summary>The verdict table the command prints.</summary>
    public void WriteTable(TextWriter o)
    {
        o.WriteLine($"{"verdict",-10} {"frames",12}");
        o.WriteLine($"{"aborted",-10} {Aborted,12:N0}");
        o.WriteLine($"{"drop",-10} {Drop,12:N0}");
        o.WriteLine($"{"pass",-10} {Pass,12:N0}");
        o.WriteLine($"{"tx",-10} {Tx,12:N0}");
        o.WriteLine($"{"redirect",-10} {Redirect,12:N0}");
        o.WriteLine($"{"total",-10} {Frames,12:N0}");
        if (Skipped > 0)
            o.WriteLine($"skipped {Skipped:N0} frames: {SkippedTooShort:N0} shorter than 14 bytes, {SkippedTooLong:N0} longer than {MaxLinear} (would need xdp.frags), {SkippedNotEthernet:N0} not Ethernet");
        if (InvalidActions > 0) o.WriteLine($"{InvalidActions:N0} runs returned no XDP action (counted as aborted)");
    }

    /// <summary>
    /// Each map's contents: DIR/&lt;map name&gt;.json as `bpftool map dump -j` prints it (<see cref="BpfMapJson"/>, with
    /// the "formatted" member for maps the kernel keeps BTF for, <see cref="MapBtf"/>), and
    /// ring buffers through <see cref="WriteRingbufs"/> into <paramref name="ringbufDir"/> (or DIR). Returns the files written.
    /// </summary>
    public List<string> WriteMaps(string dir, string? ringbufDir = null)
    {
        Directory.CreateDirectory(dir);
        var files = new List<string>();
        foreach (var map in Maps)
        {
            if (map is BpfRingbufMap) continue;
            string path = Path.Combine(dir, map.Name + ".json");
            BpfMapJson.WriteFile(map, path, MapBtf.GetValueOrDefault(map.Name));
            files.Add(path);
        }
        files.AddRange(WriteRingbufs(ringbufDir ?? dir));
        return files;
    }

    /// <summary>
    /// Each ring buffer's records not yet consumed, drained into DIR/&lt;map name&gt;.bin oldest first, each record as
    /// a little-endian u32 length and that many bytes of data (no header, no padding). Returns the files written.
    /// </summary>
    public List<string> WriteRingbufs(string dir)
    {
        var files = new List<string>();
        foreach (var map in Maps)
        {
            if (map is not BpfRingbufMap rb) continue;
            Directory.CreateDirectory(dir);
            string bin = Path.Combine(dir, map.Name + ".bin");
            using (var s = File.Create(bin)) RingbufRecords[map.Name] = rb.DrainTo(s);
            files.Add(bin);
        }
        return files;
    }

    /// <summary>Records each ring buffer held when <see cref="WriteMaps"/> drained it.</summary>
    public Dictionary<string, int> RingbufRecords { get; } = [];

    /// <summary>Entries get_next_key walks in a map (what `bpftool map dump` would list); ring buffers: records pending.</summary>
    public static long EntryCount(BpfMap map)
    {
        if (map is BpfRingbufMap) return 0;
        var key = new byte[map.KeySize];
        var next = new byte[map.KeySize];
        long n = 0;
        bool started = false;
        while (map.GetNextKey(started ? key : default, next))
        {
            started = true;
            next.CopyTo(key, 0);
            n++;
        }
        return n;
    }

    /// <summary>The --json summary: program, engine, ctx, verdict counts, skipped frames, faults, maps.</summary>
    public void WriteSummary(Stream s, string programSpec, string capture)
    {
        using var w = new Utf8JsonWriter(s, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("program", programSpec);
        w.WriteString("section", Section);
        w.WriteString("object", Object?.Name);
        w.WriteString("capture", capture);
        w.WriteString("engine", Options.Engine == BpfEngine.Jit ? "jit" : "interp");
        w.WriteNumber("ingress_ifindex", Options.Ifindex);
        w.WriteNumber("rx_queue_index", Options.RxQueue);
        w.WriteNumber("cpu", Options.Cpu);
        w.WriteNumber("frames_in", FramesIn);
        w.WriteNumber("frames", Frames);
        w.WriteStartObject("verdicts");
        w.WriteNumber("aborted", Aborted);
        w.WriteNumber("drop", Drop);
        w.WriteNumber("pass", Pass);
        w.WriteNumber("tx", Tx);
        w.WriteNumber("redirect", Redirect);
        w.WriteEndObject();
        w.WriteNumber("frames_written", FramesWritten);
        w.WriteNumber("invalid_actions", InvalidActions);
        w.WriteNumber("faulted_frames", FaultedFrames);
        w.WriteStartObject("skipped");
        w.WriteNumber("too_short", SkippedTooShort);
        w.WriteNumber("too_long", SkippedTooLong);
        w.WriteNumber("not_ethernet", SkippedNotEthernet);
        w.WriteEndObject();
        w.WriteStartArray("faults");
        foreach (var f in Faults)
        {
            w.WriteStartObject();
            w.WriteString("fault", f.Fault.ToString());
            w.WriteString("at", Where(f));
            w.WriteNumber("insn", f.Pc);
            w.WriteNumber("first_frame", f.FirstFrame);
            w.WriteNumber("frames", f.Frames);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartObject("maps");
        foreach (var m in Maps)
        {
            w.WriteStartObject(m.Name);
            w.WriteString("type", MapTypeName(m.Type));
            w.WriteNumber("entries", EntryCount(m));
            if (m is BpfRingbufMap rb)
            {
                w.WriteNumber("records", RingbufRecords.TryGetValue(m.Name, out int n) ? n : 0);
                w.WriteNumber("pending_bytes", rb.Pending);
                w.WriteNumber("dropped", rb.Dropped);
            }
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>libbpf_bpf_map_type_str's names.</summary>
    public static string MapTypeName(BpfMapType t) => t switch
    {
        BpfMapType.Hash => "hash",
        BpfMapType.Array => "array",
        BpfMapType.ProgArray => "prog_array",
        BpfMapType.PerfEventArray => "perf_event_array",
        BpfMapType.PercpuHash => "percpu_hash",
        BpfMapType.PercpuArray => "percpu_array",
        BpfMapType.LruHash => "lru_hash",
        BpfMapType.LruPercpuHash => "lru_percpu_hash",
        BpfMapType.LpmTrie => "lpm_trie",
        BpfMapType.ArrayOfMaps => "array_of_maps",
        BpfMapType.HashOfMaps => "hash_of_maps",
        BpfMapType.Devmap => "devmap",
        BpfMapType.DevmapHash => "devmap_hash",
        BpfMapType.Cpumap => "cpumap",
        BpfMapType.Xskmap => "xskmap",
        BpfMapType.Ringbuf => "ringbuf",
        _ => ((uint)t).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
