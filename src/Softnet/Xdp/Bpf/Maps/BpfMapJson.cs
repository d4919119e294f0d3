using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Softnet.Xdp.Bpf.Elf;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// The BTF a map was created with, as libbpf passes it to BPF_MAP_CREATE: the object's BTF and the key and value type
/// ids (0: none). <see cref="DatasecVars"/> holds global-data sections' variables as libbpf's btf_fixup_datasec
/// leaves them (offsets from the ELF symbols, sorted by offset), which clang leaves zero in the object.
/// </summary>
public sealed record BpfMapBtf(Btf Btf, int KeyTypeId, int ValueTypeId)
{
    public IReadOnlyDictionary<int, BtfMember[]> DatasecVars { get; init; } = new Dictionary<int, BtfMember[]>();

    /// <summary>
    /// The BTF each map of an object keeps in the kernel when libbpf creates it (bpf_object__create_map), keyed by map
    /// name: BTF-defined maps whose key and value are __type()s, global-data maps (no key, the section's DATASEC as
    /// value). libbpf drops the BTF of maps whose types take none (devmap, cpumap, xskmap, maps of maps, ...), and the
    /// kernel's map_check_btf refuses it for the rest but array (u32 key), hash and LPM trie (struct key) maps, where
    /// libbpf then creates the map without BTF; such maps get no entry here.
    /// </summary>
    public static Dictionary<string, BpfMapBtf> ForObject(BpfObject obj)
    {
        var result = new Dictionary<string, BpfMapBtf>();
        var elf = obj.Elf;
        if (obj.Btf is not { } btf) return result;

        var datasecVars = new Dictionary<int, BtfMember[]>();
        foreach (var t in btf.Types)
        {
            if (t.Kind != BtfKind.Datasec || elf.Section(t.Name) is not { } sec) continue;
            var vars = t.Members.Select(m =>
            {
                string name = btf[m.Type].Name;
                var sym = elf.Symbols.FirstOrDefault(s => s.SectionIndex == sec.Index && s.Name == name && s.SymType == ElfSymbol.STT_OBJECT);
                return sym is null ? m : m with { Offset = (uint)sym.Value };
            }).OrderBy(m => m.Offset).ToArray();
            datasecVars[t.Id] = vars;
        }

        if (btf.FindDatasec(".maps") is { } maps)
        {
            foreach (var v in maps.Members)
            {
                var var = btf[v.Type];
                if (obj.Map(var.Name) is not { } map) continue;
                var def = btf.Resolve((int)var.SizeOrType);
                int key = 0, value = 0;
                foreach (var m in def.Members)
                {
                    var mt = btf.Resolve(m.Type);
                    if (mt.Kind != BtfKind.Ptr) continue;
                    if (m.Name == "key") key = (int)mt.SizeOrType;
                    else if (m.Name == "value") value = (int)mt.SizeOrType;
                }
                if (Keeps(btf, map, key, value)) result[map.Name] = new BpfMapBtf(btf, key, value) { DatasecVars = datasecVars };
            }
        }

        foreach (var map in obj.Maps)
        {
            if (result.ContainsKey(map.Name) || map.Type != BpfMapType.Array || map.MaxEntries != 1) continue;
            // Global data: "<obj>.data" etc., its section's DATASEC the value type.
            foreach (var t in btf.Types)
                if (t.Kind == BtfKind.Datasec && t.Name.StartsWith('.') && map.Name.EndsWith(t.Name, StringComparison.Ordinal)
                    && elf.Section(t.Name) is { } sec && (int)sec.Size == map.ValueSize)
                {
                    result[map.Name] = new BpfMapBtf(btf, 0, t.Id) { DatasecVars = datasecVars };
                    break;
                }
        }
        return result;
    }

    /// <summary>Whether the kernel keeps a BTF-defined map's key and value types (libbpf's list, then map_check_btf).</summary>
    private static bool Keeps(Btf btf, BpfMap map, int key, int value)
    {
        if (value == 0) return false; // bpftool formats only with a value type
        try
        {
            if (btf.SizeOf(value) != map.ValueSize || (key != 0 && btf.SizeOf(key) != map.KeySize)) return false;
        }
        catch (BpfObjectException) { return false; }
        if (key == 0) return false; // only global-data arrays may omit the key
        var k = btf.Resolve(key);
        return map.Type switch
        {
            BpfMapType.Array or BpfMapType.PercpuArray => k.Kind == BtfKind.Int && (k.IntData & 0xff) == 32 && ((k.IntData >> 16) & 0xff) == 0,
            BpfMapType.Hash or BpfMapType.PercpuHash or BpfMapType.LruHash or BpfMapType.LruPercpuHash => true,
            BpfMapType.LpmTrie => k.Kind == BtfKind.Struct,
            _ => false,
        };
    }
}

/// <summary>
/// A map's contents as `bpftool map dump -j` prints them (bpftool's map.c: print_entry_json, print_entry_error; its
/// json_writer.c in compact mode; btf_dumper.c for BTF): one JSON array, in get_next_key order, of
/// <c>{"key":["0x..",..],"value":["0x..",..]}</c>, per-CPU maps as <c>{"key":[..],"values":[{"cpu":N,"value":[..]},..]}</c>,
/// a failed lookup as <c>{"key":[..],"value":{"error":"strerror text"}}</c> except -ENOENT in prog arrays and map-in-maps
/// (skipped), and a closing newline. A map created with BTF (<see cref="BpfMapBtf"/>) adds bpftool's
/// <c>"formatted":{"key":..,"value":..}</c> member, the key and value printed by their BTF types.
/// </summary>
public static class BpfMapJson
{
    public static string Dump(BpfMap map, BpfMapBtf? btf = null)
    {
        var sb = new StringBuilder();
        Write(map, sb, btf);
        return sb.ToString();
    }

    public static void WriteFile(BpfMap map, string path, BpfMapBtf? btf = null) => File.WriteAllText(path, Dump(map, btf));

    public static void Write(BpfMap map, StringBuilder o, BpfMapBtf? btf = null)
    {
        bool perCpu = map.Type is BpfMapType.PercpuArray or BpfMapType.PercpuHash or BpfMapType.LruPercpuHash or BpfMapType.PercpuCgroupStorage;
        bool skipMissing = map.Type is BpfMapType.ProgArray or BpfMapType.ArrayOfMaps or BpfMapType.HashOfMaps;
        int step = (map.ValueSize + 7) & ~7;
        int cpus = perCpu ? map.UserValueSize / step : 1;
        var key = new byte[map.KeySize];
        var next = new byte[map.KeySize];
        var value = new byte[Math.Max(map.UserValueSize, 1)];
        var w = new Writer(o);
        bool started = false;
        w.StartArray();
        while (map.GetNextKey(started ? key : default, next))
        {
            started = true;
            next.CopyTo(key, 0);
            long err = map.UserLookupElem(key, value);
            if (err != 0 && skipMissing && err == -BpfErrno.ENOENT) continue;
            w.StartObject();
            w.Name("key");
            w.Hex(key);
            if (err != 0)
            {
                w.Name("value");
                w.StartObject();
                w.Name("error");
                w.String(StrError((int)-err));
                w.EndObject();
                w.EndObject();
                continue;
            }
            if (!perCpu)
            {
                w.Name("value");
                w.Hex(value.AsSpan(0, map.ValueSize));
            }
            else
            {
                w.Name("values");
                w.StartArray();
                for (int c = 0; c < cpus; c++)
                {
                    w.StartObject();
                    w.Name("cpu");
                    w.Raw(c.ToString(CultureInfo.InvariantCulture));
                    w.Name("value");
                    w.Hex(value.AsSpan(c * step, map.ValueSize));
                    w.EndObject();
                }
                w.EndArray();
            }
            if (btf is not null)
            {
                // do_dump_btf: the key by its type when there is one, then the value (per CPU for per-CPU maps).
                var d = new Dumper(btf, w);
                w.Name("formatted");
                w.StartObject();
                bool ok = true;
                if (btf.KeyTypeId != 0)
                {
                    w.Name("key");
                    ok = d.Type(btf.KeyTypeId, 0, key, 0);
                }
                if (ok && !perCpu)
                {
                    w.Name("value");
                    d.Type(btf.ValueTypeId, 0, value.AsSpan(0, map.ValueSize), 0);
                }
                else if (ok)
                {
                    w.Name("values");
                    w.StartArray();
                    for (int c = 0; c < cpus; c++)
                    {
                        w.StartObject();
                        w.Name("cpu");
                        w.Raw(c.ToString(CultureInfo.InvariantCulture));
                        w.Name("value");
                        bool good = d.Type(btf.ValueTypeId, 0, value.AsSpan(c * step, map.ValueSize), 0);
                        w.EndObject();
                        if (!good) break;
                    }
                    w.EndArray();
                }
                w.EndObject();
            }
            w.EndObject();
        }
        w.EndArray();
        o.Append('\n');
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

    /// <summary>bpftool's json_writer in compact mode: a comma before every element but the first of its container,
    /// strings escaped its way — a backslash comes out as "\n" — as bpftool 7.1 (Debian bookworm's) does; later
    /// versions also write an apostrophe as "\'".</summary>
    private sealed class Writer(StringBuilder o)
    {
        private bool _sep;

        private void Eor()
        {
            if (_sep) o.Append(',');
            _sep = true;
        }

        public void StartObject() => Begin('{');
        public void EndObject() => End('}');
        public void StartArray() => Begin('[');
        public void EndArray() => End(']');

        private void Begin(char c)
        {
            Eor();
            o.Append(c);
            _sep = false;
        }

        private void End(char c)
        {
            o.Append(c);
            _sep = true;
        }

        public void Name(string name)
        {
            Eor();
            _sep = false;
            Puts(name);
            o.Append(':');
        }

        public void Raw(string text)
        {
            Eor();
            o.Append(text);
        }

        public void String(string s)
        {
            Eor();
            Puts(s);
        }

        private void Puts(string s)
        {
            o.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '\t': o.Append("\\t"); break;
                    case '\n': o.Append("\\n"); break;
                    case '\r': o.Append("\\r"); break;
                    case '\f': o.Append("\\f"); break;
                    case '\b': o.Append("\\b"); break;
                    case '\\': o.Append("\\n"); break; // sic: json_writer.c's jsonw_puts
                    case '"': o.Append("\\\""); break;
                    default: o.Append(c); break;
                }
            }
            o.Append('"');
        }

        public void Hex(ReadOnlySpan<byte> data)
        {
            // print_hex_data_json: an array of "0x%02hhx" strings.
            StartArray();
            foreach (byte b in data) Raw("\"0x" + b.ToString("x2", CultureInfo.InvariantCulture) + "\"");
            EndArray();
        }
    }

    /// <summary>bpftool's btf_dumper (is_plain_text false): a value printed by its BTF type. False where bpftool's
    /// dumper fails (an unsupported kind), having written what bpftool writes up to there.</summary>
    private readonly struct Dumper(BpfMapBtf b, Writer w)
    {
        private Btf Btf => b.Btf;

        /// <summary>btf_dumper_do_type: <paramref name="data"/> from the value's start byte; bitOffset below 8.</summary>
        public bool Type(int id, int bitOffset, ReadOnlySpan<byte> data, int at)
        {
            var t = Btf[id];
            switch (t.Kind)
            {
                case BtfKind.Int: return Int(t, bitOffset, data, at);
                case BtfKind.Struct:
                case BtfKind.Union: return Struct(t, data, at);
                case BtfKind.Array: return Array(t, data, at);
                case BtfKind.Enum: return Enum(t, data, at);
                case BtfKind.Enum64: return Enum64(t, data, at);
                case BtfKind.Ptr:
                    w.Raw(U64(data, at, 8).ToString(CultureInfo.InvariantCulture));
                    return true;
                case BtfKind.Unknown:
                    w.Raw("(unknown)");
                    return true;
                case BtfKind.Fwd:
                    w.Raw("(fwd-kind-invalid)");
                    return false;
                case BtfKind.Typedef:
                case BtfKind.Volatile:
                case BtfKind.Const:
                case BtfKind.Restrict:
                    return Type(Btf.Resolve(id).Id, bitOffset, data, at);
                case BtfKind.Var:
                    w.StartObject();
                    w.Name(t.Name);
                    bool ok = Type((int)t.SizeOrType, bitOffset, data, at);
                    w.EndObject();
                    return ok;
                case BtfKind.Datasec:
                {
                    w.StartObject();
                    w.Name(t.Name);
                    w.StartArray();
                    bool good = true;
                    foreach (var v in b.DatasecVars.TryGetValue(id, out var vars) ? vars : t.Members)
                        if (!(good = Type(v.Type, 0, data, at + (int)v.Offset))) break;
                    w.EndArray();
                    w.EndObject();
                    return good;
                }
                default:
                    w.Raw("(unsupported-kind");
                    return false;
            }
        }

        /// <summary>Little-endian bytes at <paramref name="at"/>, as many as the buffer holds of <paramref name="n"/>.</summary>
        private static ulong U64(ReadOnlySpan<byte> data, int at, int n)
        {
            ulong v = 0;
            for (int i = 0; i < n && at + i < data.Length; i++) v |= (ulong)data[at + i] << (8 * i);
            return v;
        }

        private bool Int(BtfType t, int bitOffset, ReadOnlySpan<byte> data, int at)
        {
            uint enc = (t.IntData >> 24) & 0x0f, intOffset = (t.IntData >> 16) & 0xff, bits = t.IntData & 0xff;
            if (bitOffset != 0 || intOffset != 0 || (bits & 7) != 0)
            {
                IntBits(bits, (int)(bitOffset + intOffset), data, at);
                return true;
            }
            if (bits == 128)
            {
                Int128(U64(data, at, 8), U64(data, at + 8, 8));
                return true;
            }
            var inv = CultureInfo.InvariantCulture;
            switch (enc)
            {
                case 0:
                    if (bits is 64 or 32 or 16 or 8) w.Raw(U64(data, at, (int)bits / 8).ToString(inv));
                    else IntBits(bits, 0, data, at);
                    return true;
                case 1: // BTF_INT_SIGNED
                    if (bits is 64 or 32 or 16 or 8)
                    {
                        int shift = 64 - (int)bits;
                        w.Raw(((long)(U64(data, at, (int)bits / 8) << shift) >> shift).ToString(inv));
                    }
                    else IntBits(bits, 0, data, at);
                    return true;
                case 2: // BTF_INT_CHAR: printed raw between quotes when printable, as bpftool does
                {
                    byte c = at < data.Length ? data[at] : (byte)0;
                    w.Raw(c is >= 0x20 and < 0x7f ? "\"" + (char)c + "\"" : "\"\\u00" + c.ToString("x2", inv) + "\"");
                    return true;
                }
                case 4: // BTF_INT_BOOL: the bool's own bytes (bpftool 7.1; later sources read an int there)
                    w.Raw(U64(data, at, Math.Min((int)t.SizeOrType, 8)) != 0 ? "true" : "false");
                    return true;
                default:
                    return false;
            }
        }

        /// <summary>btf_dumper_int_bits / btf_dumper_bitfield: the bits as a quoted hex number.</summary>
        private void IntBits(uint bits, int totalBitOffset, ReadOnlySpan<byte> data, int at)
        {
            at += totalBitOffset >> 3;
            int bitOffset = totalBitOffset & 7;
            Bitfield((int)bits, bitOffset, data, at);
        }

        private void Bitfield(int bits, int bitOffset, ReadOnlySpan<byte> data, int at)
        {
            int bytes = (bitOffset + bits + 7) >> 3;
            UInt128 v = 0;
            for (int i = 0; i < bytes && at + i < data.Length; i++) v |= (UInt128)data[at + i] << (8 * i);
            v >>= bitOffset;
            if (bits < 128) v &= (UInt128.One << bits) - 1;
            Int128((ulong)v, (ulong)(v >> 64));
        }

        private void Int128(ulong lower, ulong upper)
            => w.Raw(upper == 0 ? $"\"0x{lower:x}\"" : $"\"0x{upper:x}{lower:x16}\"");

        private bool Struct(BtfType t, ReadOnlySpan<byte> data, int at)
        {
            w.StartObject();
            bool ok = true;
            foreach (var m in t.Members)
            {
                uint bitOffset = m.Offset, bitfieldSize = 0;
                if (t.KindFlag)
                {
                    bitfieldSize = bitOffset >> 24;
                    bitOffset &= 0xffffff;
                }
                w.Name(m.Name);
                int mat = at + (int)(bitOffset >> 3);
                if (bitfieldSize != 0) Bitfield((int)bitfieldSize, (int)(bitOffset & 7), data, mat);
                else if (!(ok = Type(m.Type, (int)(bitOffset & 7), data, mat))) break;
            }
            w.EndObject();
            return ok;
        }

        private bool Array(BtfType t, ReadOnlySpan<byte> data, int at)
        {
            if (IsString(t, data, at, out string s))
            {
                w.String(s);
                return true;
            }
            int elemSize = Btf.SizeOf(t.ElemType);
            w.StartArray();
            bool ok = true;
            for (uint i = 0; i < t.Nelems; i++)
                if (!(ok = Type(t.ElemType, 0, data, at + (int)i * elemSize))) break;
            w.EndArray();
            return ok;
        }

        /// <summary>is_str_array: a char array (not through a typedef) holding printable bytes up to a NUL.</summary>
        private bool IsString(BtfType t, ReadOnlySpan<byte> data, int at, out string s)
        {
            s = "";
            if (t.Nelems == 0) return false;
            var e = Btf[t.ElemType];
            while (e.Kind is BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag) e = Btf[(int)e.SizeOrType];
            if (e.Kind != BtfKind.Int || e.SizeOrType != 1) return false;
            if (((e.IntData >> 24) & 0x0f) != 2 && e.Name != "char") return false;
            for (int i = 0; i < t.Nelems && at + i < data.Length; i++)
            {
                byte c = data[at + i];
                if (c == 0)
                {
                    s = Encoding.ASCII.GetString(data.Slice(at, i));
                    return true;
                }
                if (c <= 0x1f || c >= 0x7f) return false;
            }
            return false;
        }

        private bool Enum(BtfType t, ReadOnlySpan<byte> data, int at)
        {
            int size = (int)t.SizeOrType;
            if (size is not (1 or 2 or 4 or 8)) return false;
            int shift = 64 - 8 * size;
            long v = (long)(U64(data, at, size) << shift) >> shift;
            foreach (var (name, value) in t.Enumerators)
                if (value == v)
                {
                    w.String(name);
                    return true;
                }
            w.Raw(v.ToString(CultureInfo.InvariantCulture));
            return true;
        }

        private bool Enum64(BtfType t, ReadOnlySpan<byte> data, int at)
        {
            long v = (long)U64(data, at, 8);
            foreach (var (name, value) in t.Enumerators)
                if (value == v)
                {
                    w.String(name);
                    return true;
                }
            w.Raw(v.ToString(CultureInfo.InvariantCulture));
            return true;
        }
    }
}
