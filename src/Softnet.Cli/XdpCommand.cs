using System.CommandLine;
using Softnet.Capture;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;

namespace Softnet.Cli;

/// <summary>
/// <c>softnet xdp ...</c>: the eBPF side of XDP. <c>xdp conformance DIR</c> runs every .data file of a
/// bpf_conformance test folder through the assembler, verifier and interpreter, as the suite's own runner runs a
/// plugin, printing each failure and a closing "N passed, N failed" line; the exit code is 1 when any failed.
/// <c>--jit</c> runs the programs through the JIT instead of the interpreter. <c>xdp test PROG.o[:SECTION] CAPTURE</c>
/// runs an object's XDP program once per frame as BPF_PROG_TEST_RUN does (<see cref="XdpTestRun"/>), prints the
/// verdict counts and writes the output frames, the maps (as `bpftool map dump -j`) and a JSON summary.
/// </summary>
public static class XdpCommand
{
    public const int BadInput = 2;

    public static Command Create()
    {
        var cmd = new Command("xdp", "Run eBPF programs: the conformance suite, and clang-built XDP objects over a capture");
        cmd.Subcommands.Add(CreateConformance());
        cmd.Subcommands.Add(CreateTest());
        return cmd;
    }

    private static Command CreateTest()
    {
        var cmd = new Command("test", "Run an XDP program once per frame of a capture, as BPF_PROG_TEST_RUN does, and report verdicts, output frames and maps");
        var prog = new Argument<string>("program") { Description = "a clang-built eBPF object and optionally the program's section or function name", HelpName = "PROG.o[:SECTION]" };
        var capture = new Argument<string>("capture") { Description = "frames to run the program on (pcap or pcapng, Ethernet)", HelpName = "CAPTURE" };
        var outFile = new Option<string?>("--out") { Description = "write every PASS, TX and REDIRECT frame after the program's changes to FILE (.pcap or .pcapng), with its input timestamp", HelpName = "FILE" };
        var maps = new Option<string?>("--maps") { Description = "write each map's final contents to DIR/<map>.json as `bpftool map dump -j` prints them (ring buffers: DIR/<map>.bin, records as u32 length + bytes)", HelpName = "DIR" };
        var json = new Option<string?>("--json") { Description = "write a JSON summary (verdict counts, frames, faults, engine, program, map entry counts) to FILE", HelpName = "FILE" };
        var ifindex = new Option<int>("--ifindex") { Description = "xdp_md.ingress_ifindex (default 1: without a ctx the kernel runs the frame on lo)", DefaultValueFactory = _ => 1 };
        var rxQueue = new Option<int>("--rx-queue") { Description = "xdp_md.rx_queue_index", DefaultValueFactory = _ => 0 };
        var engine = new Option<string>("--engine") { Description = "jit (IL, the default) or interp (the reference interpreter)", DefaultValueFactory = _ => "jit" };
        engine.AcceptOnlyFromAmong("jit", "interp");
        var ringbuf = new Option<string?>("--ringbuf") { Description = "write ring buffer records to DIR/<map>.bin (also done by --maps)", HelpName = "DIR" };
        var withMeta = new Option<bool>("--with-meta") { Description = "output frames start at data_meta, as BPF_PROG_TEST_RUN's data_out (default: at data)" };
        var trace = new Option<string?>("--trace") { Description = "write bpf_trace_printk lines to FILE", HelpName = "FILE" };
        var seed = new Option<ulong>("--seed") { Description = "seed of bpf_get_prandom_u32", DefaultValueFactory = _ => 0 };
        var cpu = new Option<int>("--cpu") { Description = "the CPU the runs are on (per-CPU maps, bpf_get_smp_processor_id); the kernel runs a test on the caller's CPU", DefaultValueFactory = _ => 0 };
        cmd.Arguments.Add(prog);
        cmd.Arguments.Add(capture);
        foreach (var o in new Option[] { outFile, maps, json, ifindex, rxQueue, engine, ringbuf, withMeta, trace, seed, cpu }) cmd.Options.Add(o);
        cmd.SetAction(pr => RunTest(new TestArgs(
            pr.GetValue(prog) ?? "", pr.GetValue(capture) ?? "", pr.GetValue(outFile), pr.GetValue(maps), pr.GetValue(json),
            pr.GetValue(ifindex), pr.GetValue(rxQueue), pr.GetValue(engine) == "interp" ? BpfEngine.Interpreter : BpfEngine.Jit,
            pr.GetValue(ringbuf), pr.GetValue(withMeta), pr.GetValue(trace), pr.GetValue(seed), pr.GetValue(cpu)),
            pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error));
        return cmd;
    }

    /// <summary>What `xdp test` was asked for.</summary>
    public sealed record TestArgs(string Program, string Capture, string? Out = null, string? Maps = null, string? Json = null,
        int Ifindex = 1, int RxQueue = 0, BpfEngine Engine = BpfEngine.Jit, string? Ringbuf = null, bool WithMeta = false,
        string? Trace = null, ulong Seed = 0, int Cpu = 0);

    /// <summary>`xdp test`: 0 when it ran (whatever the verdicts), 2 for a bad object, program, capture or option.</summary>
    public static int RunTest(TestArgs a, TextWriter output, TextWriter error)
    {
        if (a.Ifindex <= 0 || a.RxQueue < 0)
        {
            error.WriteLine($"softnet xdp test: --ifindex must be at least 1 and --rx-queue at least 0 (the kernel refuses a queue without a device)");
            return BadInput;
        }
        int cpus = Softnet.Xdp.Bpf.Maps.BpfMapFactory.PossibleCpus();
        if (a.Cpu < 0 || a.Cpu >= cpus)
        {
            error.WriteLine($"softnet xdp test: --cpu {a.Cpu}: this machine's possible CPUs are 0-{cpus - 1}");
            return BadInput;
        }
        if (!File.Exists(a.Capture))
        {
            error.WriteLine($"softnet xdp test: {a.Capture}: no such capture file");
            return BadInput;
        }
        StreamWriter? traceWriter = null;
        try
        {
            if (a.Trace is not null) traceWriter = new StreamWriter(a.Trace);
            XdpTestRun run;
            try
            {
                run = XdpTestRun.Load(a.Program, new XdpTestRunOptions
                {
                    Ifindex = a.Ifindex, RxQueue = a.RxQueue, Engine = a.Engine, WithMeta = a.WithMeta, Seed = a.Seed, Trace = traceWriter,
                    Cpu = a.Cpu, PossibleCpus = cpus,
                });
            }
            catch (Exception e) when (e is ArgumentException or FileNotFoundException or IOException)
            {
                error.WriteLine($"softnet xdp test: {e.Message}");
                return BadInput;
            }
            try
            {
                using var reader = CaptureReader.Open(a.Capture);
                using var writer = a.Out is null ? null : CaptureWriter.Create(a.Out);
                run.Run(reader, writer);
            }
            catch (CaptureFormatException e)
            {
                error.WriteLine($"softnet xdp test: {a.Capture}: {e.Message}");
                return BadInput;
            }
            run.WriteTable(output);
            foreach (var f in run.Faults)
                output.WriteLine($"fault: {f.Fault} at {run.Where(f)} (first in frame {f.FirstFrame}; {f.Frames:N0} frames, counted as aborted)");
            if (a.Maps is not null) run.WriteMaps(a.Maps, a.Ringbuf);
            else if (a.Ringbuf is not null) run.WriteRingbufs(a.Ringbuf);
            if (a.Json is not null)
                using (var s = File.Create(a.Json)) run.WriteSummary(s, a.Program, a.Capture);
            return 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"softnet xdp test: {e.Message}");
            return BadInput;
        }
        finally
        {
            traceWriter?.Dispose();
        }
    }

    private static Command CreateConformance()
    {
        var cmd = new Command("conformance", "Run every .data file of a bpf_conformance tests folder and report failures");
        var dir = new Argument<string>("dir") { Description = "folder of .data files (bpf_conformance tests/ or negative/)", HelpName = "DIR" };
        var verbose = new Option<bool>("--verbose") { Description = "also print each passing file (and, for expected refusals, the verifier's message)" };
        cmd.Arguments.Add(dir);
        var jit = new Option<bool>("--jit") { Description = "run each program through the JIT instead of the interpreter" };
        cmd.Options.Add(verbose);
        cmd.Options.Add(jit);
        cmd.SetAction(parseResult =>
        {
            var output = parseResult.InvocationConfiguration.Output;
            var error = parseResult.InvocationConfiguration.Error;
            string path = parseResult.GetValue(dir) ?? "";
            if (!Directory.Exists(path))
            {
                error.WriteLine($"softnet xdp conformance: no such folder: {path}");
                return BadInput;
            }
            return RunConformance(path, parseResult.GetValue(verbose), output,
                parseResult.GetValue(jit) ? BpfEngine.Jit : BpfEngine.Interpreter);
        });
        return cmd;
    }

    public static int RunConformance(string dir, bool verbose, TextWriter output, BpfEngine engine = BpfEngine.Interpreter)
    {
        int passed = 0, failed = 0;
        foreach (var o in new BpfConformanceRunner(engine).RunDirectory(dir))
        {
            if (o.Passed)
            {
                passed++;
                if (verbose) output.WriteLine(o.Detail.Length > 0 ? $"PASS {o.File} ({o.Detail.Replace('\n', ' ')})" : $"PASS {o.File}");
            }
            else
            {
                failed++;
                output.WriteLine($"FAIL {o.Detail.Replace('\n', ' ')}");
            }
        }
        output.WriteLine($"{passed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }
}
