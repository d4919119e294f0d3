using System.Text.Json;

namespace Softnet.Telemetry;

/// <summary>"sysctls_not_modelled": per namespace, the sysctls its sysctl.conf set that Softnet keeps but does not act
/// on (key: value), so a report says what the replay ignored. Namespaces that set none are left out.</summary>
public sealed class SysctlReportSection(IReadOnlyList<(string Name, IReadOnlyDictionary<string, string> NotModelled)> namespaces) : IReportSection
{
    public string Key => "sysctls_not_modelled";

    public void WriteJson(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        foreach (var (name, keys) in namespaces)
        {
            if (keys.Count == 0) continue;
            writer.WriteStartObject(name);
            foreach (var (k, v) in keys) writer.WriteString(k, v);
            writer.WriteEndObject();
        }
        writer.WriteEndObject();
    }
}
