using System.Diagnostics;
using Softnet.Capture;
using Softnet.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Softnet.Tests.Capture;

/// <summary>tcpdump's regression captures (some deliberately malformed) as a robustness corpus.</summary>
public class CorpusTests(ITestOutputHelper output)
{
    private static string CorpusDir => CaptureTestKit.CorpusDir;

    private static string[] CorpusFiles()
        => Directory.Exists(CorpusDir)
            ? Directory.GetFiles(CorpusDir).Order(StringComparer.Ordinal).ToArray() // LICENSE too: it must fail as "not a capture"
            : [];

    /// <summary>Reads a file to its end; frames and the format error, if any. Other exceptions propagate.</summary>
    private static (long Frames, CaptureFormatException? Error) Count(string path)
    {
        long n = 0;
        try
        {
            using var r = CaptureReader.Open(path);
            while (r.TryRead(out _, out _)) n++;
            return (n, null);
        }
        catch (CaptureFormatException e)
        {
            return (n, e);
        }
    }

    [SkippableFact]
    public void Every_corpus_file_reads_to_end_or_format_error()
    {
        var files = CorpusFiles();
        Skip.If(files.Length == 0, $"{CorpusDir} is not present");
        var sw = Stopwatch.StartNew();
        var task = Task.Run(() =>
        {
            var bad = new List<string>();
            int clean = 0, errors = 0;
            foreach (var f in files)
            {
                try
                {
                    var (_, err) = Count(f);
                    if (err is null) clean++;
                    else
                    {
                        errors++;
                        if (err.Offset < 0 || err.Offset > new FileInfo(f).Length) bad.Add($"{Path.GetFileName(f)}: offset {err.Offset} outside the file");
                    }
                }
                catch (Exception e)
                {
                    bad.Add($"{Path.GetFileName(f)}: {e.GetType().Name}: {e.Message}");
                }
            }
            return (bad, clean, errors);
        });
        Assert.True(task.Wait(TimeSpan.FromSeconds(60)), "reading the corpus hung (over 60 s)");
        var (bad, clean, errors) = task.Result;
        output.WriteLine($"{files.Length} files: {clean} read clean, {errors} format errors, {sw.ElapsedMilliseconds} ms");
        // The corpus holds non-capture files (LICENSE); they must end as format errors, not be read as captures.
        if (files.Any(f => Path.GetFileName(f) == "LICENSE"))
            Assert.Equal(0, Assert.Throws<CaptureFormatException>(() => Count(Path.Combine(CorpusDir, "LICENSE")).Error is { } e ? throw e : 0).Offset);
        Assert.True(bad.Count == 0, string.Join("\n", bad));
    }

    [SkippableFact]
    public void Corpus_frame_counts_match_capinfos()
    {
        var files = CorpusFiles();
        Skip.If(files.Length == 0, $"{CorpusDir} is not present");
        Skip.IfNot(ExternalTool.Exists("capinfos"), ExternalTool.Missing("capinfos"));
        // One capinfos run for the whole set: table output, file name and packet count per line.
        // Files it cannot read go to stderr and are left out of the table.
        var (_, stdout, _) = ExternalTool.Run("capinfos", ["-c", "-M", "-T", "-r", "-B", .. files]);
        var theirs = new Dictionary<string, long>();
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split('\t');
            if (parts.Length >= 2 && long.TryParse(parts[^1].Trim(), out long c)) theirs[parts[0].Trim()] = c;
        }
        Assert.True(theirs.Count > files.Length / 2, $"capinfos listed only {theirs.Count} of {files.Length} files");

        var diffs = new List<string>();
        int compared = 0;
        foreach (var f in files)
        {
            if (!theirs.TryGetValue(f, out long expected)) continue;
            compared++;
            var (ours, err) = Count(f);
            if (ours != expected || err is not null)
                diffs.Add($"{Path.GetFileName(f)}: capinfos {expected}, ours {ours}{(err is null ? "" : $" then {err.Message}")}");
        }
        output.WriteLine($"compared {compared} files with capinfos, {diffs.Count} differ");
        Assert.True(diffs.Count == 0, string.Join("\n", diffs));
    }
}
