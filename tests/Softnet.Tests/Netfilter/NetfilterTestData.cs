using System.Runtime.CompilerServices;

namespace Softnet.Tests.Netfilter;

/// <summary>Locates rule files beside this source file (the test project does not copy them to the output).</summary>
internal static class NetfilterTestData
{
    public static string Dir([CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "Data");
    public static string PathOf(string name) => System.IO.Path.Combine(Dir(), name);
    public static string Read(string name) => File.ReadAllText(PathOf(name));

    /// <summary>Splits iptables-save text into table name -> lines (comments dropped), for order-free comparison.</summary>
    public static Dictionary<string, List<string>> Tables(string text)
    {
        var result = new Dictionary<string, List<string>>();
        List<string>? cur = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            if (line.StartsWith('*')) { cur = new List<string>(); result[line[1..]] = cur; continue; }
            cur?.Add(line);
        }
        return result;
    }
}
