using System.Globalization;
using System.Text;

namespace Softnet.Xdp.Bpf;

/// <summary>
/// One bpf_conformance test file (.data): sections introduced by "-- asm", "-- raw", "-- mem", "-- result",
/// "-- error" (and "-- c" / "-- no register offset", which are ignored), '#' comments anywhere. As the suite's
/// own parser (bpf_test_parser.cc): `-- raw` wins over `-- asm`; a file with neither a result nor an error,
/// with an unknown directive, or without instructions has nothing to run.
/// </summary>
public sealed class BpfConformanceFile
{
    public required string Path { get; init; }
    public byte[] Mem { get; init; } = [];
    public ulong? Result { get; init; }
    /// <summary>The expected refusal; empty when the file only says the program must be refused (`-- error` alone).</summary>
    public string? Error { get; init; }
    /// <summary>The program, or null when the file has none (see <see cref="Problem"/>).</summary>
    public BpfInsn[]? Program { get; init; }
    /// <summary>Why there is nothing to run: an assembler error ("file:line: message") or a missing section.</summary>
    public string? Problem { get; init; }

    public static BpfConformanceFile Parse(string path) => Parse(path, File.ReadAllText(path));

    public static BpfConformanceFile Parse(string path, string text)
    {
        string state = "";
        var asm = new StringBuilder();
        int asmFirstLine = 0;
        var raw = new List<string>();
        var mem = new List<string>();
        string? result = null, error = null;
        var lines = text.Split('\n');
        string name = System.IO.Path.GetFileName(path);
        for (int n = 0; n < lines.Length; n++)
        {
            string line = lines[n].TrimEnd('\r');
            int hash = line.IndexOf('#');
            if (hash >= 0) line = line[..hash];
            if (line.Contains("--", StringComparison.Ordinal))
            {
                if (line.Contains("asm", StringComparison.Ordinal)) { state = "asm"; asmFirstLine = n + 2; continue; }
                if (line.Contains("result", StringComparison.Ordinal)) { state = "result"; continue; }
                if (line.Contains("mem", StringComparison.Ordinal)) { state = "mem"; continue; }
                if (line.Contains("raw", StringComparison.Ordinal)) { state = "raw"; continue; }
                if (line.Contains("no register offset", StringComparison.Ordinal) || line.Contains(" c", StringComparison.Ordinal)) { state = ""; continue; }
                if (line.Contains("error", StringComparison.Ordinal)) { state = "error"; error ??= ""; continue; }
                return new BpfConformanceFile { Path = path, Problem = $"{name}:{n + 1}: Unknown directive {line.Trim()}" };
            }
            switch (state)
            {
                case "asm":
                    // Keep line numbers: blank lines stay in the text the assembler sees.
                    if (asm.Length == 0) asmFirstLine = n + 1;
                    asm.Append(line).Append('\n');
                    break;
                case "result": if (line.Trim().Length > 0) result = line.Trim(); break;
                case "error": error = line.Length > 0 ? line : error ?? ""; break;
                case "mem": mem.Add(line); break;
                case "raw": raw.Add(line); break;
            }
        }
        if (error is null && result is null)
            return new BpfConformanceFile { Path = path, Problem = $"{name}: no result or error in test file" };
        ulong? expected = null;
        if (result is not null)
        {
            expected = result.Contains("0x", StringComparison.Ordinal)
                ? ulong.Parse(result.Replace("0x", "", StringComparison.Ordinal), NumberStyles.HexNumber, CultureInfo.InvariantCulture)
                : ulong.Parse(result, CultureInfo.InvariantCulture);
        }
        var memBytes = new List<byte>();
        foreach (var tok in string.Join(' ', mem).Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
            memBytes.Add(byte.Parse(tok, NumberStyles.HexNumber, CultureInfo.InvariantCulture));

        BpfInsn[]? prog;
        var rawTokens = string.Join(' ', raw).Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (rawTokens.Length > 0)
        {
            prog = ParseRaw(rawTokens);
        }
        else
        {
            try
            {
                prog = BpfAssembler.Assemble(asm.ToString(), name, asmFirstLine);
            }
            catch (BpfAsmException e)
            {
                return new BpfConformanceFile { Path = path, Mem = [.. memBytes], Result = expected, Error = error, Problem = e.Message };
            }
        }
        if (prog.Length == 0)
            return new BpfConformanceFile { Path = path, Mem = [.. memBytes], Result = expected, Error = error, Problem = $"{name}: Test file has no BPF instructions." };
        return new BpfConformanceFile { Path = path, Mem = [.. memBytes], Result = expected, Error = error, Program = prog };
    }

    /// <summary>`-- raw`: 64-bit words ("0x..." each), or the image as hex bytes two digits each.</summary>
    private static BpfInsn[] ParseRaw(string[] tokens)
    {
        bool bytes = tokens.All(t => t.Length == 2 && !t.StartsWith("0x", StringComparison.Ordinal));
        if (bytes)
        {
            var image = tokens.Select(t => byte.Parse(t, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();
            if (image.Length % BpfInsn.Size != 0) Array.Resize(ref image, (image.Length + 7) / 8 * 8);
            return BpfInsn.Decode(image);
        }
        return tokens.Select(t => BpfInsn.FromUInt64(t.StartsWith("0x", StringComparison.Ordinal)
            ? ulong.Parse(t[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)
            : ulong.Parse(t, CultureInfo.InvariantCulture))).ToArray();
    }
}

/// <summary>The outcome of one conformance file; <see cref="Detail"/> says why it failed, or how an expected refusal read.</summary>
public readonly record struct BpfConformanceOutcome(string File, bool Passed, string Detail);

/// <summary>
/// Runs conformance files as the suite's runner does with a plugin: `-- mem` is the memory R1 points at (R2 its
/// length); a file passes when the program verifies and returns exactly `-- result` (all 64 bits), or when it
/// is refused with exactly the `-- error` text. A file with nothing to run does not pass. The program runs in the
/// interpreter or, with <see cref="BpfEngine.Jit"/>, compiled by <see cref="BpfJit"/>.
/// </summary>
public sealed class BpfConformanceRunner(BpfEngine engine = BpfEngine.Interpreter)
{
    private readonly BpfInterpreter _vm = new();

    public BpfEngine Engine { get; } = engine;

    public BpfConformanceOutcome Run(string path)
    {
        string name = Path.GetFileName(path);
        BpfConformanceFile f;
        try
        {
            f = BpfConformanceFile.Parse(path);
        }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
        {
            return new(name, false, $"{name}: unreadable test file: {e.Message}");
        }
        if (f.Program is null) return new(name, false, f.Problem ?? "no program");

        string outcome;
        BpfProgram prog;
        try
        {
            prog = BpfVerifier.Verify(f.Program, BpfVerifierOptions.Conformance(f.Mem.Length));
        }
        catch (BpfVerifierException e)
        {
            if (f.Error is not null && (f.Error.Length == 0 || f.Error.TrimEnd() == e.Reason)) return new(name, true, $"refused: {e.Message}");
            return new(name, false, f.Error is null
                ? $"{name}: verifier refused the program: {e.Message}"
                : $"{name}: verifier refused with \"{e.Message}\" but expected \"{f.Error}\"");
        }
        var mem = new BpfMemory(default, f.Mem, 0, f.Mem.Length);
        ulong r1 = BpfMemory.Address(BpfMemory.PacketRegion, 0), r2 = (ulong)f.Mem.Length;
        var r = Engine == BpfEngine.Jit ? BpfJit.Compile(prog).Run(ref mem, r1, r2) : _vm.Run(prog, ref mem, r1, r2);
        if (!r.Ok)
        {
            outcome = $"fault {r.Fault} at insn {r.Pc}";
            if (f.Error is not null && (f.Error.Length == 0 || f.Error.TrimEnd() == outcome)) return new(name, true, "");
            return new(name, false, $"{name}: {outcome}" + (f.Error is null ? $", expected 0x{f.Result:x}" : $", expected error \"{f.Error}\""));
        }
        if (f.Error is not null) return new(name, false, $"{name}: returned 0x{r.R0:x} but expected error \"{f.Error}\"");
        if (r.R0 != f.Result) return new(name, false, $"{name}: returned 0x{r.R0:x}, expected 0x{f.Result:x}");
        return new(name, true, "");
    }

    /// <summary>Every .data file of <paramref name="dir"/>, in name order.</summary>
    public IEnumerable<BpfConformanceOutcome> RunDirectory(string dir)
    {
        foreach (var path in Directory.GetFiles(dir, "*.data").Order(StringComparer.Ordinal)) yield return Run(path);
    }
}
