using System.Text;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// A map's contents as `bpftool map dump -j` prints them without BTF (bpftool's map.c: print_entry_json,
/// print_entry_error, print_hex_data_json; json_writer.c in compact mode): one JSON array, in get_next_key order, of
/// <c>{"key":["0x..",..],"value":["0x..",..]}</c>, per-CPU maps as <c>{"key":[..],"values":[{"cpu":N,"value":[..]},..]}</c>,
/// a failed lookup as <c>{"key":[..],"value":{"error":"strerror text"}}</c> except -ENOENT in prog arrays and map-in-maps
/// (skipped), and a closing newline.
/// </summary>
public static class BpfMapJson
{
    public static string Dump(BpfMap map)
    {
        var sb = new StringBuilder();
        Write(map, sb);
        return sb.ToString();
    }

    public static void WriteFile(BpfMap map, string path) => File.WriteAllText(path, Dump(map));

    public static void Write(BpfMap map, StringBuilder o)
    {
        bool perCpu = map.Type is BpfMapType.PercpuArray or BpfMapType.PercpuHash or BpfMapType.LruPercpuHash or BpfMapType.PercpuCgroupStorage;
        bool skipMissing = map.Type is BpfMapType.ProgArray or BpfMapType.ArrayOfMaps or BpfMapType.HashOfMaps;
        int step = (map.ValueSize + 7) & ~7;
        var key = new byte[map.KeySize];
        var next = new byte[map.KeySize];
        var value = new byte[Math.Max(map.UserValueSize, 1)];
        bool first = true, started = false;
        o.Append('[');
        while (map.GetNextKey(started ? key : default, next))
        {
            started = true;
            next.CopyTo(key, 0);
            long err = map.UserLookupElem(key, value);
            if (err != 0 && skipMissing && err == -BpfErrno.ENOENT) continue;
            if (!first) o.Append(',');
            first = false;
            o.Append("{\"key\":");
            Hex(o, key);
            if (err != 0)
            {
                o.Append(",\"value\":{\"error\":\"").Append(StrError((int)-err)).Append("\"}}");
                continue;
            }
            if (!perCpu)
            {
                o.Append(",\"value\":");
                Hex(o, value.AsSpan(0, map.ValueSize));
            }
            else
            {
                o.Append(",\"values\":[");
                int cpus = map.UserValueSize / step;
                for (int c = 0; c < cpus; c++)
                {
                    if (c > 0) o.Append(',');
                    o.Append("{\"cpu\":").Append(c).Append(",\"value\":");
                    Hex(o, value.AsSpan(c * step, map.ValueSize));
                    o.Append('}');
                }
                o.Append(']');
            }
            o.Append('}');
        }
        o.Append("]\n");
    }

    private static void Hex(StringBuilder o, ReadOnlySpan<byte> data)
    {
        o.Append('[');
        for (int i = 0; i < data.Length; i++)
        {
            if (i > 0) o.Append(',');
            o.Append("\"0x").Append(data[i].ToString("x2")).Append('"');
        }
        o.Append(']');
    }

    /// <summary>glibc's strerror for the errnos a map lookup gives.</summary>
    private static string StrError(int errno) => errno switch
    {
        BpfErrno.ENOENT => "No such file or directory",
        BpfErrno.EOPNOTSUPP => "Operation not supported",
        BpfErrno.EINVAL => "Invalid argument",
        BpfErrno.EPERM => "Operation not permitted",
        BpfErrno.ENOSPC => "No space left on device",
        _ => $"Unknown error {errno}",
    };
}
