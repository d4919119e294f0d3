using System.CommandLine;
using Softnet.Xdp.Bpf;

namespace Softnet.Cli;

/// <summary>
/// <c>softnet xdp ...</c>: the eBPF side of XDP. <c>xdp conformance DIR</c> runs every .data file of a
/// bpf_conformance test folder through the assembler, verifier and interpreter, as the suite's own runner runs a
/// plugin, printing each failure and a closing "N passed, N failed" line; the exit code is 1 when any failed.
/// <c>--jit</c> runs the programs through the JIT instead of the interpreter.
/// </summary>
public static class XdpCommand
{
    public const int BadInput = 2;

    public static Command Create()
    {
        var cmd = new Command("xdp", "Run eBPF programs: the conformance suite (more to come: ELF objects, test runs)");
        cmd.Subcommands.Add(CreateConformance());
        return cmd;
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
