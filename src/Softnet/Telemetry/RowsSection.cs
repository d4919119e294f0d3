using System.Text.Json;

namespace Softnet.Telemetry;

/// <summary>A report section that is an array with one object per row; a subclass writes a row's fields.</summary>
public abstract class RowsSection<TRow>(string key, IReadOnlyList<TRow> rows) : IReportSection
{
    public string Key { get; } = key;

    public IReadOnlyList<TRow> Rows { get; } = rows;

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartArray();
        foreach (var r in Rows)
        {
            w.WriteStartObject();
            WriteRow(w, r);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    /// <summary>The fields of one row, inside its object.</summary>
    protected abstract void WriteRow(Utf8JsonWriter w, TRow row);
}
