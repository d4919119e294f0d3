using System.CommandLine;
using Softnet.Cli;
using Softnet.Xdp.Bpf;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf;

/// <summary>
/// The bpf_conformance suite (../shared/conformance/bpf_conformance): every program of tests/ assembles, verifies
/// and returns its expected value; every file of negative/ is refused (by the assembler, the verifier, or a wrong
/// result that the runner reports), with the suite's own words where its CMake tests check them.
/// </summary>
[Collection("console")]
public class BpfConformanceTests
{
    /// <summary>
    /// $SOFTNET_CONFORMANCE, else shared/conformance/bpf_conformance beside any folder above the test binaries
    /// (CI puts shared/ next to its clone), else /work/shared/conformance/bpf_conformance.
    /// </summary>
    public static string SuiteDir { get; } = FindSuite();

    private static string FindSuite()
    {
        const string rel = "shared/conformance/bpf_conformance";
        if (Environment.GetEnvironmentVariable("SOFTNET_CONFORMANCE") is { Length: > 0 } env) return env;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, rel);
            if (Directory.Exists(candidate)) return candidate;
        }
        return "/work/" + rel;
    }

    private static string Folder(string name)
    {
        string dir = Path.Combine(SuiteDir, name);
        // Not a skip: without the suite this test proves nothing, and CI must say so.
        if (!Directory.Exists(dir))
            Assert.Fail($"bpf_conformance folder missing: {dir} (set SOFTNET_CONFORMANCE or put shared/conformance beside the clone)");
        return dir;
    }

    [Fact]
    public void Every_positive_test_passes()
    {
        var runner = new BpfConformanceRunner();
        var files = Directory.GetFiles(Folder("tests"), "*.data");
        Assert.True(files.Length >= 300, $"only {files.Length} test files in {SuiteDir}/tests");
        var failures = files.Order(StringComparer.Ordinal).Select(runner.Run).Where(o => !o.Passed).Select(o => o.Detail).ToList();
        Assert.True(failures.Count == 0, $"{failures.Count} of {files.Length} failed:\n" + string.Join("\n", failures));
    }

    [Fact]
    public void Every_negative_test_is_refused()
    {
        var runner = new BpfConformanceRunner();
        var files = Directory.GetFiles(Folder("negative"), "*.data").Order(StringComparer.Ordinal).ToArray();
        Assert.True(files.Length >= 60, $"only {files.Length} negative files in {SuiteDir}/negative");
        var accepted = new List<string>();
        foreach (var path in files)
        {
            string name = Path.GetFileName(path);
            var f = BpfConformanceFile.Parse(path);
            if (f.Program is null) continue;   // refused by the parser or the assembler
            string? refusal = BpfVerifier.Check(f.Program, BpfVerifierOptions.Conformance(f.Mem.Length));
            if (name.StartsWith("unused-", StringComparison.Ordinal))
            {
                // Non-zero unused fields: the verifier itself must refuse.
                if (refusal is null) accepted.Add($"{name}: verifier accepted an instruction with a non-zero unused field");
                else if (!refusal.Contains("uses reserved fields", StringComparison.Ordinal)) accepted.Add($"{name}: refused for another reason: {refusal}");
                continue;
            }
            // Otherwise the runner must not call it a pass (wrong result, wrong error).
            var o = runner.Run(path);
            if (o.Passed) accepted.Add($"{name}: passed, but it is a negative test");
        }
        Assert.True(accepted.Count == 0, string.Join("\n", accepted));
    }

    /// <summary>The messages the suite's own CMake tests (tools/tests.cmake) expect from the assembler.</summary>
    [Theory]
    [InlineData("invalid_register.data", "Invalid register: %r50")]
    [InlineData("invalid_offset.data", "Failed to decode register and offset: %r1")]
    [InlineData("invalid_offset_range.data", "Offset out of 16-bit range: +0x10000")]
    [InlineData("invalid_imm32_hex_range.data", "Immediate out of 32-bit range: 0x100000000")]
    [InlineData("invalid_imm32_dec_range.data", "Immediate out of 32-bit range: 2147483648")]
    [InlineData("invalid_operand_count.data", "Invalid number of operands for mnemonic: lddw")]
    [InlineData("invalid_label.data", "Invalid label: NOT_A_LABEL")]
    [InlineData("invalid_mnemonic.data", "Invalid mnemonic: ldxq")]
    [InlineData("invalid_lock.data", "Invalid number of operands for lock")]
    [InlineData("invalid_lock2.data", "Invalid number of operands for lock")]
    public void Assembler_errors_use_the_suites_words_and_name_file_and_line(string file, string message)
    {
        var f = BpfConformanceFile.Parse(Path.Combine(Folder("negative"), file));
        Assert.Null(f.Program);
        Assert.Matches($@"^{System.Text.RegularExpressions.Regex.Escape(file)}:\d+: ", f.Problem);
        Assert.EndsWith(message, f.Problem);
    }

    [Fact]
    public void Files_without_a_program_or_expectation_are_not_passes()
    {
        var runner = new BpfConformanceRunner();
        foreach (var name in new[] { "empty.data", "empty_instructions.data", "invalid_unknown_directive.data" })
            Assert.False(runner.Run(Path.Combine(Folder("negative"), name)).Passed, name);
        // error.data expects "Invalid", but "or %r0, %r10" reads R0 before any write.
        Assert.Contains("R0 !read_ok", runner.Run(Path.Combine(Folder("negative"), "error.data")).Detail);
        Assert.Contains("returned 0x8877665544332211", runner.Run(Path.Combine(Folder("negative"), "incorrect_return_value_high_bits.data")).Detail);
    }

    [Fact]
    public void Cli_runs_a_folder_and_closes_with_the_counts()
    {
        var output = new StringWriter();
        var config = new InvocationConfiguration { Output = output, Error = new StringWriter() };
        int rc = new RootCommand { XdpCommand.Create() }.Parse(["xdp", "conformance", Folder("tests")]).Invoke(config);
        var text = output.ToString();
        Assert.Equal(0, rc);
        Assert.Matches(@"^\d+ passed, 0 failed$", text.TrimEnd().Split('\n')[^1]);

        output = new StringWriter();
        config = new InvocationConfiguration { Output = output, Error = new StringWriter() };
        rc = new RootCommand { XdpCommand.Create() }.Parse(["xdp", "conformance", Folder("negative")]).Invoke(config);
        Assert.Equal(1, rc);
        Assert.Contains("FAIL invalid_register.data:4: Invalid register: %r50", output.ToString());
        Assert.Matches(@"\d+ passed, \d+ failed\s*$", output.ToString());

        Assert.Equal(XdpCommand.BadInput, new RootCommand { XdpCommand.Create() }.Parse(["xdp", "conformance", "/nonexistent-folder"])
            .Invoke(new InvocationConfiguration { Output = new StringWriter(), Error = new StringWriter() }));
    }
}
