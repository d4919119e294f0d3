namespace Softnet.Topology;

/// <summary>Scenario folders on disk.</summary>
public static class ScenarioFiles
{
    /// <summary>Copies the folder <paramref name="from"/> (every file below it) into <paramref name="to"/>, replacing
    /// files there of the same name: a variant of a scenario to change a file or two of.</summary>
    public static string Copy(string from, string to)
    {
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string dst = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(dst)!);
            File.Copy(file, dst, overwrite: true);
        }
        return to;
    }
}
