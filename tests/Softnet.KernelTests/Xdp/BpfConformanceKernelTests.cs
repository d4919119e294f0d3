using System.Text;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Helpers;
using Xunit;
using Xunit.Abstractions;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// The bpf_conformance suite's positive programs run as XDP programs in the kernel and here. A conformance program
/// expects R1 = its memory and R2 = the memory's length; an XDP program gets a context. So each program becomes the
/// subprogram of a small XDP main: check that data + len fits before data_end, R1 = data, R2 = len, R3..R5 = 0,
/// call it, and return R0 — the low 32 bits, all the test run hands back — or, in a second load, R0 >> 32, so the
/// whole 64-bit result is compared. The frame is the `-- mem` bytes (padded to the test run's 14-byte minimum). A
/// program "fits" when the kernel's verifier accepts the wrapped program; those that fit must give the kernel's
/// result and output frame in our interpreter and JIT, and the suite's expected result.
/// </summary>
[Trait("Category", "Kernel")]
public class BpfConformanceKernelTests(ITestOutputHelper output)
{
    private static string? SuiteDir()
    {
        if (Environment.GetEnvironmentVariable("SOFTNET_CONFORMANCE") is { Length: > 0 } env) return Path.Combine(env, "tests");
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "shared", "conformance", "bpf_conformance", "tests");
            if (Directory.Exists(p)) return p;
        }
        return Directory.Exists("/work/shared/conformance/bpf_conformance/tests") ? "/work/shared/conformance/bpf_conformance/tests" : null;
    }

    /// <summary>The XDP wrapper around <paramref name="prog"/> for a memory of <paramref name="len"/> bytes; with
    /// <paramref name="high"/> it returns the upper half of the result.</summary>
    public static BpfInsn[] Wrap(BpfInsn[] prog, int len, bool high)
    {
        var w = new List<BpfInsn>
        {
            new((byte)(BPF_LDX | BPF_MEM | BPF_W), 2, 1, 0, 0),             // r2 = ctx->data
            new((byte)(BPF_LDX | BPF_MEM | BPF_W), 3, 1, 4, 0),             // r3 = ctx->data_end
            new((byte)(BPF_ALU64 | BPF_MOV | BPF_X), 4, 2, 0, 0),           // r4 = r2
            new((byte)(BPF_ALU64 | BPF_ADD | BPF_K), 4, 0, 0, len),         // r4 += len
            new((byte)(BPF_JMP | BPF_JGT | BPF_X), 4, 3, 0, 0),             // if r4 > r3 goto out (patched below)
            new((byte)(BPF_ALU64 | BPF_MOV | BPF_X), 1, 2, 0, 0),           // r1 = data
            new((byte)(BPF_ALU64 | BPF_MOV | BPF_K), 2, 0, 0, len),         // r2 = len
            new((byte)(BPF_ALU64 | BPF_MOV | BPF_K), 3, 0, 0, 0),
            new((byte)(BPF_ALU64 | BPF_MOV | BPF_K), 4, 0, 0, 0),
            new((byte)(BPF_ALU64 | BPF_MOV | BPF_K), 5, 0, 0, 0),
            new((byte)(BPF_JMP | BPF_CALL), 0, BPF_PSEUDO_CALL, 0, 0),      // call the program (patched below)
        };
        if (high) w.Add(new((byte)(BPF_ALU64 | BPF_RSH | BPF_K), 0, 0, 0, 32));
        w.Add(new((byte)(BPF_JMP | BPF_EXIT), 0, 0, 0, 0));
        int outAt = w.Count;
        w.Add(new((byte)(BPF_ALU64 | BPF_MOV | BPF_K), 0, 0, 0, 0x0bad));   // out: the frame is too short
        w.Add(new((byte)(BPF_JMP | BPF_EXIT), 0, 0, 0, 0));
        w[4] = w[4] with { Off = (short)(outAt - 5) };
        w[10] = w[10] with { Imm = w.Count - 11 };
        w.AddRange(prog);
        return w.ToArray();
    }

    private sealed record Outcome(string File, bool Fits, string Detail, bool Agrees);

    [SkippableFact]
    public void Conformance_programs_that_fit_xdp_agree_with_the_kernel()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        var dir = SuiteDir();
        // Not a skip: without the suite this test proves nothing, and CI must say so (as BpfConformanceTests).
        if (dir is null) Assert.Fail("bpf_conformance suite not found (shared/conformance/bpf_conformance beside the clone, /work/shared, or SOFTNET_CONFORMANCE)");
        var outcomes = new List<Outcome>();
        var helpers = BpfXdpHelpers.Table();
        foreach (var path in Directory.GetFiles(dir!, "*.data").Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(path);
            var f = BpfConformanceFile.Parse(path);
            if (f.Program is null || f.Result is null || f.Error is not null) continue; // positive programs only
            outcomes.Add(RunOne(name, f, helpers));
        }
        int fit = outcomes.Count(o => o.Fits), agree = outcomes.Count(o => o.Fits && o.Agrees);
        output.WriteLine($"{outcomes.Count} positive conformance programs; {fit} fit an XDP program in the kernel; {agree} of those agree");
        foreach (var g in outcomes.Where(o => !o.Fits).GroupBy(o => o.Detail).OrderByDescending(g => g.Count()))
            output.WriteLine($"  not fitting ({g.Count()}): {g.Key}: {string.Join(" ", g.Select(o => o.File))}");
        foreach (var o in outcomes.Where(o => o.Fits && !o.Agrees)) output.WriteLine($"  DISAGREE {o.File}: {o.Detail}");
        Assert.True(fit >= 150, $"only {fit} conformance programs fit");
        var bad = outcomes.Where(o => o.Fits && !o.Agrees).ToList();
        Assert.True(bad.Count == 0, string.Join("\n", bad.Select(o => $"{o.File}: {o.Detail}")));
    }

    private static Outcome RunOne(string name, BpfConformanceFile f, BpfHelperTable helpers)
    {
        int len = f.Mem.Length;
        var frame = new byte[Math.Max(len, 14)];
        f.Mem.CopyTo(frame, 0);
        var halves = new uint[2];
        byte[]? kernelFrame = null;
        for (int h = 0; h < 2; h++)
        {
            var wrapped = Wrap(f.Program!, len, h == 1);
            int fd;
            try
            {
                fd = LoadRetrying(wrapped.Select(i => i.ToUInt64()).ToArray());
            }
            catch (BpfSyscallException e)
            {
                var last = e.VerifierLog.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => !l.StartsWith("processed", StringComparison.Ordinal)
                    && !l.StartsWith("verification time", StringComparison.Ordinal) && !l.StartsWith("stack depth", StringComparison.Ordinal)) ?? $"errno {e.Errno}";
                return new Outcome(name, false, Normalise(last), false);
            }
            try
            {
                var r = BpfKernelObject.TestRun(fd, frame);
                halves[h] = r.Verdict;
                kernelFrame ??= r.Frame;
            }
            finally { BpfSyscall.Close(fd); }
        }
        ulong kernel = halves[0] | (ulong)halves[1] << 32;
        var sb = new StringBuilder();
        if (kernel != f.Result) sb.Append($"kernel 0x{kernel:x}, expected 0x{f.Result:x}; ");
        foreach (var engine in new[] { BpfEngine.Interpreter, BpfEngine.Jit })
        {
            ulong ours = 0;
            byte[]? ourFrame = null;
            for (int h = 0; h < 2; h++)
            {
                BpfProgram prog;
                try
                {
                    prog = BpfVerifier.Verify(Wrap(f.Program!, len, h == 1), BpfVerifierOptions.Xdp(helpers));
                }
                catch (BpfVerifierException e)
                {
                    sb.Append($"our verifier refuses what the kernel accepts: {e.Message}; ");
                    goto next;
                }
                var buf = new byte[4096];
                frame.CopyTo(buf, XdpAdjust.PacketHeadroom);
                var xdp = new XdpBuff(buf, XdpAdjust.PacketHeadroom, frame.Length, 0, XdpAdjust.SkbSharedInfoSize);
                BpfRunResult res;
                if (engine == BpfEngine.Jit) BpfJit.Compile(prog).RunXdp(new BpfJitStack(), ref xdp, 1, new BpfRunContext(), null, out res);
                else new BpfInterpreter().RunXdp(prog, ref xdp, 1, new BpfRunContext(), null, out res);
                if (!res.Ok)
                {
                    sb.Append($"{engine} faulted: {res.Fault} at {res.Pc}; ");
                    goto next;
                }
                ours |= (ulong)(uint)res.R0 << (32 * h);
                ourFrame ??= buf.AsSpan(xdp.DataMeta, xdp.DataEnd - xdp.DataMeta).ToArray();
            }
            if (ours != kernel) sb.Append($"{engine} 0x{ours:x}, kernel 0x{kernel:x}; ");
            if (!ourFrame!.AsSpan().SequenceEqual(kernelFrame)) sb.Append($"{engine} frame {Convert.ToHexString(ourFrame!)}, kernel {Convert.ToHexString(kernelFrame!)}; ");
            next:;
        }
        return new Outcome(name, true, sb.ToString(), sb.Length == 0);
    }

    /// <summary>A verifier message without its register numbers and offsets, so refusals group by kind.</summary>
    private static string Normalise(string line)
    {
        var s = System.Text.RegularExpressions.Regex.Replace(line.Trim(), @"\b(R|r)\d+\b", "R#");
        s = System.Text.RegularExpressions.Regex.Replace(s, @"-?\b\d+\b", "N");
        return s.Length > 120 ? s[..120] : s;
    }

    private static int LoadRetrying(ulong[] raw)
    {
        for (int attempt = 0; ; attempt++)
        {
            try { return BpfSyscall.LoadProgram(BpfSyscall.ProgTypeXdp, raw); }
            catch (BpfSyscallException e) when (e.Errno == 11 && attempt < 5) { }
        }
    }
}
