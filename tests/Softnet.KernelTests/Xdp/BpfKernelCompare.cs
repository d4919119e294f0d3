using System.Diagnostics;
using Softnet.KernelTests.Support;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Elf;
using Softnet.Xdp.Bpf.Helpers;
using Softnet.Xdp.Bpf.Maps;
using Xunit;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// Runs a clang-built object's program on the same frames in Softnet's interpreter, Softnet's JIT and the kernel
/// (BPF_PROG_TEST_RUN through <see cref="BpfKernelObject"/>) and compares the raw return values, the output frames
/// byte for byte (data_meta..data_end, as the test run copies it) and, at the end, every map's contents. Each engine
/// has its own copy of the object, so each one's maps see only its own runs; all three start from the same contents.
/// Ours run on a buffer laid out as the test run's (256 bytes of headroom, skb_shared_info reserved at the end of a
/// 4096-byte frame), on CPU <see cref="Cpu"/> with the kernel's run pinned to the same CPU.
/// </summary>
public sealed class BpfKernelCompare : IDisposable
{
    public BpfObject Interp { get; }
    public BpfObject Jit { get; }
    public BpfKernelObject Kernel { get; }
    public string Section { get; }
    public int Runs { get; private set; }

    /// <summary>The CPU every engine runs on (the kernel's test run pinned there, ours told so); 0 unless set.</summary>
    public int Cpu
    {
        get => _interpRun.Cpu;
        set => _interpRun.Cpu = _jitRun.Cpu = value;
    }

    private readonly BpfProgram _interpProg, _jitProgSource;
    private readonly BpfJitProgram _jitProg;
    private readonly BpfRunContext _interpRun = new() { Cpu = 0 }, _jitRun = new() { Cpu = 0 };
    private readonly BpfInterpreter _interpreter = new();
    private readonly BpfJitStack _stack = new();

    /// <summary>Why kernel comparisons cannot run here, or null.</summary>
    public static string? SkipReason()
        => !BpfSyscall.Supported ? "bpf(2) comparisons need Linux x86-64"
            : !Proc.IsRoot ? "bpf(2) comparisons need root (CAP_BPF / CAP_SYS_ADMIN)" : null;

    /// <summary>Null when this kernel lets an XDP program call bpf_xdp_adjust_meta; otherwise why not. Some kernel builds
    /// refuse the helper to XDP programs at load ("program of this type cannot use helper bpf_xdp_adjust_meta#54"),
    /// and then there is no kernel result to compare with.</summary>
    public static string? AdjustMetaRefused() => s_metaRefused.Value;

    private static readonly Lazy<string?> s_metaRefused = new(() =>
    {
        if (SkipReason() is { } why) return why;
        var raw = Softnet.Xdp.Bpf.BpfAssembler.Assemble("mov %r2, -4\ncall 54\nmov %r0, 2\nexit\n", "adjust-meta-probe").Select(i => i.ToUInt64()).ToArray();
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                BpfSyscall.Close(BpfSyscall.LoadProgram(BpfSyscall.ProgTypeXdp, raw));
                return null;
            }
            catch (BpfSyscallException e) when (e.Errno == 11 && attempt < 5) { }
            catch (BpfSyscallException e) when (e.VerifierLog.Contains("cannot use helper", StringComparison.Ordinal))
            {
                return $"this kernel ({File.ReadAllText("/proc/sys/kernel/osrelease").Trim()}) refuses bpf_xdp_adjust_meta to XDP programs at load " +
                       "(\"program of this type cannot use helper\"): no kernel result to compare with";
            }
        }
    });

    /// <param name="name">The program file, Programs/<paramref name="name"/>.c.</param>
    /// <param name="section">The program to run (null: the first XDP program).</param>
    /// <param name="setup">Fills an object's maps before the runs; given ours (twice) and the loaded programs so
    /// prog arrays can be filled. The kernel's maps are copied from the interpreter's copy after it.</param>
    /// <param name="clock">bpf_ktime_get_ns for our engines (null: the monotonic clock).</param>
    /// <param name="fib">What bpf_fib_lookup asks in our engines (the kernel asks the ingress device's namespace).</param>
    public BpfKernelCompare(string name, string? section = null, Action<BpfObject, Func<string, BpfProgram>>? setup = null, Func<ulong>? clock = null,
        BpfHelperTable? helpers = null, IBpfFib? fib = null)
    {
        Section = section ?? "xdp";
        helpers ??= BpfXdpHelpers.Table();
        var image = File.ReadAllBytes(BpfKernelPrograms.Object(name));
        int cpus = BpfKernelObject.PossibleCpus();
        Interp = BpfObject.Load(image, name + ".o", cpus);
        Jit = BpfObject.Load(image, name + ".o", cpus);
        var h = helpers;
        BpfProgram LoadI(string s) => Interp.LoadProgram(s, h);
        BpfProgram LoadJ(string s) => Jit.LoadProgram(s, h);
        setup?.Invoke(Interp, LoadI);
        setup?.Invoke(Jit, LoadJ);
        _interpProg = Interp.LoadProgram(section, helpers);
        _jitProgSource = Jit.LoadProgram(section, helpers);
        _jitProg = BpfJit.Compile(_jitProgSource);
        if (clock is not null) _interpRun.NowNs = _jitRun.NowNs = clock;
        _interpRun.Fib = _jitRun.Fib = fib;
        Kernel = BpfKernelObject.Load(Interp);
        Kernel.CopyAllToKernel();
    }

    /// <summary>Our run of <paramref name="prog"/> on <paramref name="frame"/>: raw R0 and the output frame.</summary>
    private (uint R0, byte[] Frame) RunOurs(bool jit, byte[] frame, uint ifindex, int rxQueue)
    {
        var buf = new byte[4096];
        frame.CopyTo(buf, XdpAdjust.PacketHeadroom);
        var xdp = new XdpBuff(buf, XdpAdjust.PacketHeadroom, frame.Length, rxQueue, XdpAdjust.SkbSharedInfoSize);
        BpfRunResult result;
        if (jit)
        {
            _jitRun.ClearRedirect();
            _jitProg.RunXdp(_stack, ref xdp, ifindex, _jitRun, Jit.Space, out result);
        }
        else
        {
            _interpRun.ClearRedirect();
            _interpRun.TailCallCount = 0;
            _interpreter.RunXdp(_interpProg, ref xdp, ifindex, _interpRun, Interp.Space, out result);
        }
        Assert.True(result.Ok, $"{(jit ? "JIT" : "interpreter")} faulted: {result.Fault} at {result.Pc}");
        return ((uint)result.R0, buf.AsSpan(xdp.DataMeta, xdp.DataEnd - xdp.DataMeta).ToArray());
    }

    /// <summary>Runs <paramref name="frame"/> through all three and asserts they agree; returns the kernel's verdict.</summary>
    public uint Run(byte[] frame, string what, uint ifindex = 0, int rxQueue = 0, string? netnsPath = null, uint ourIfindex = 1)
    {
        Runs++;
        var k = Kernel.TestRun(Section, frame, ifindex, (uint)rxQueue, cpu: Cpu, netnsPath: netnsPath);
        uint ourIf = ifindex != 0 ? ifindex : ourIfindex;
        var i = RunOurs(false, frame, ourIf, rxQueue);
        var j = RunOurs(true, frame, ourIf, rxQueue);
        Assert.True(k.Verdict == i.R0, $"{what}: kernel returned {k.Verdict}, interpreter {i.R0}");
        Assert.True(k.Verdict == j.R0, $"{what}: kernel returned {k.Verdict}, JIT {j.R0}");
        Assert.True(k.Frame.AsSpan().SequenceEqual(i.Frame), $"{what}: output frames differ\n kernel      {Convert.ToHexString(k.Frame)}\n interpreter {Convert.ToHexString(i.Frame)}");
        Assert.True(k.Frame.AsSpan().SequenceEqual(j.Frame), $"{what}: output frames differ\n kernel {Convert.ToHexString(k.Frame)}\n JIT    {Convert.ToHexString(j.Frame)}");
        return k.Verdict;
    }

    /// <summary>Every map's contents agree in the kernel and both our copies (entries sorted by key; a map's
    /// <paramref name="mask"/>, when given, first blanks what is clock-dependent in a value).</summary>
    public void AssertMapsEqual(Func<string, byte[], byte[]>? mask = null, params string[] skip)
    {
        foreach (var (map, jmap) in MapPairs())
        {
            if (skip.Contains(map.Name) || map.Type is BpfMapType.ProgArray or BpfMapType.Ringbuf or BpfMapType.ArrayOfMaps or BpfMapType.HashOfMaps) continue;
            string K(List<BpfMapEntry> l) => string.Join("\n", l
                .Select(e => new BpfMapEntry(e.Key, mask is null ? e.Value : mask(map.Name, e.Value), e.PerCpu is null || mask is null ? e.PerCpu : e.PerCpu.Select(v => mask(map.Name, v)).ToArray()))
                .OrderBy(e => Convert.ToHexString(e.Key), StringComparer.Ordinal).Select(e => e.ToString()));
            string kernel = K(Kernel.ReadMap(map)), interp = K(BpfKernelObject.ReadOurs(map)), jit = K(BpfKernelObject.ReadOurs(jmap));
            Assert.True(kernel == interp, $"map {map.Name}: kernel and interpreter differ\n kernel:\n{kernel}\n interpreter:\n{interp}");
            Assert.True(kernel == jit, $"map {map.Name}: kernel and JIT differ\n kernel:\n{kernel}\n JIT:\n{jit}");
        }
    }

    /// <summary>Each map of the interpreter's object with the JIT's, inner maps of maps of maps included (by key).</summary>
    private IEnumerable<(BpfMap Interp, BpfMap Jit)> MapPairs()
    {
        foreach (var map in Interp.Maps)
        {
            var jmap = Jit.Map(map.Name)!;
            yield return (map, jmap);
            if (map.Type is not (BpfMapType.ArrayOfMaps or BpfMapType.HashOfMaps)) continue;
            var key = Array.Empty<byte>();
            var next = new byte[map.KeySize];
            while (map.GetNextKey(key, next))
            {
                key = (byte[])next.Clone();
                ulong hi = map.Lookup(key, 0), hj = jmap.Lookup(key, 0);
                Assert.True((hi == 0) == (hj == 0), $"{map.Name}: the interpreter's and the JIT's objects differ at key {Convert.ToHexString(key)}");
                if (hi != 0) yield return (Interp.Space.MapAt(hi)!, Jit.Space.MapAt(hj)!);
            }
        }
    }

    public void Dispose() => Kernel.Dispose();
}

/// <summary>
/// The C programs of tests/Softnet.Tests/Xdp/Bpf/Programs compiled as users build them (clang-14 -O2 -g -target bpf),
/// cached by the source's hash; the source folder is found from the test's folder upwards.
/// </summary>
public static class BpfKernelPrograms
{
    private static readonly string CacheDir = Path.Combine(Path.GetTempPath(), "softnet-bpf-test-objects");

    public static string SourceDir { get; } = FindSourceDir();

    private static string FindSourceDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "tests", "Softnet.Tests", "Xdp", "Bpf", "Programs");
            if (Directory.Exists(p)) return p;
        }
        throw new DirectoryNotFoundException($"tests/Softnet.Tests/Xdp/Bpf/Programs not found above {AppContext.BaseDirectory}");
    }

    /// <summary>The object built from Programs/<paramref name="name"/>.c (BpfClang, shared with Softnet.Tests and the bench).</summary>
    public static string Object(string name)
    {
        string src = Path.Combine(SourceDir, name + ".c");
        Assert.True(File.Exists(src), $"no test program {src}");
        try
        {
            return Softnet.Tests.Xdp.Bpf.Elf.BpfClang.Compile(src, CacheDir);
        }
        catch (Softnet.Tests.Xdp.Bpf.Elf.BpfClangException e)
        {
            Assert.Fail(e.Message);
            throw;
        }
    }
}
