using System.Buffers.Binary;
using System.Text;

namespace Softnet.Xdp.Bpf.Elf;

/// <summary>BTF kinds (BTF_KIND_* in include/uapi/linux/btf.h), same values.</summary>
public enum BtfKind : byte
{
    Unknown = 0, Int = 1, Ptr = 2, Array = 3, Struct = 4, Union = 5, Enum = 6, Fwd = 7, Typedef = 8, Volatile = 9,
    Const = 10, Restrict = 11, Func = 12, FuncProto = 13, Var = 14, Datasec = 15, Float = 16, DeclTag = 17,
    TypeTag = 18, Enum64 = 19,
}

/// <summary>A member of a struct/union, a DATASEC variable (Type, Offset, Size) or a FUNC_PROTO parameter.</summary>
public readonly record struct BtfMember(string Name, int Type, uint Offset, uint Size);

/// <summary>One BTF type: its kind, name, size or referenced type, array shape and members.</summary>
public sealed record BtfType(int Id, BtfKind Kind, string Name, uint SizeOrType, BtfMember[] Members)
{
    public int ElemType { get; init; }
    public uint Nelems { get; init; }

    /// <summary>The info word's kind_flag: bitfield member offsets (struct/union), signedness (enum).</summary>
    public bool KindFlag { get; init; }

    /// <summary>An INT's encoding word: encoding &lt;&lt; 24 | bit offset &lt;&lt; 16 | bits.</summary>
    public uint IntData { get; init; }

    /// <summary>An ENUM's or ENUM64's names and values.</summary>
    public (string Name, long Value)[] Enumerators { get; init; } = [];
}

/// <summary>
/// The .BTF section as far as the loader needs it (tools/lib/bpf/btf.c's parser, in short): the type table, so a
/// map definition in <c>.maps</c> can be read — its <c>__uint</c> fields are pointers to arrays whose element count
/// is the value, its <c>__type</c> fields pointers to the key and value types, whose sizes the table resolves.
/// </summary>
public sealed class Btf
{
    private readonly List<BtfType> _types = [new BtfType(0, BtfKind.Unknown, "void", 0, [])];

    public IReadOnlyList<BtfType> Types => _types;

    public BtfType this[int id] => id >= 0 && id < _types.Count ? _types[id] : throw new BpfObjectException($".BTF: type id {id} out of range");

    private static BpfObjectException Bad(string what) => new($".BTF: {what}");

    public static Btf Parse(ReadOnlySpan<byte> b)
    {
        if (b.Length < 24 || BinaryPrimitives.ReadUInt16LittleEndian(b) != 0xeb9f) throw Bad("bad magic or header");
        uint hdrLen = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]);
        uint typeOff = BinaryPrimitives.ReadUInt32LittleEndian(b[8..]), typeLen = BinaryPrimitives.ReadUInt32LittleEndian(b[12..]);
        uint strOff = BinaryPrimitives.ReadUInt32LittleEndian(b[16..]), strLen = BinaryPrimitives.ReadUInt32LittleEndian(b[20..]);
        if ((ulong)hdrLen + typeOff + typeLen > (ulong)b.Length || (ulong)hdrLen + strOff + strLen > (ulong)b.Length)
            throw Bad("type or string section runs past the end");
        var types = b.Slice((int)(hdrLen + typeOff), (int)typeLen).ToArray().AsSpan();
        var strs = b.Slice((int)(hdrLen + strOff), (int)strLen).ToArray();
        string Str(uint off)
        {
            if (off >= (uint)strs.Length) return "";
            int end = Array.IndexOf(strs, (byte)0, (int)off);
            return Encoding.UTF8.GetString(strs, (int)off, (end < 0 ? strs.Length : end) - (int)off);
        }
        var btf = new Btf();
        int p = 0;
        while (p + 12 <= types.Length)
        {
            uint nameOff = BinaryPrimitives.ReadUInt32LittleEndian(types[p..]);
            uint info = BinaryPrimitives.ReadUInt32LittleEndian(types[(p + 4)..]);
            uint sizeOrType = BinaryPrimitives.ReadUInt32LittleEndian(types[(p + 8)..]);
            p += 12;
            var kind = (BtfKind)((info >> 24) & 0x1f);
            int vlen = (int)(info & 0xffff);
            int id = btf._types.Count;
            BtfMember[] members = [];
            int elem = 0;
            uint nelems = 0;
            uint intData = 0;
            (string, long)[] enums = [];
            int Need(int n)
            {
                if (p + n > typeLen) throw Bad($"type {id} runs past the end of the type section");
                int at = p;
                p += n;
                return at;
            }
            switch (kind)
            {
                case BtfKind.Int: intData = BinaryPrimitives.ReadUInt32LittleEndian(types[Need(4)..]); break;
                case BtfKind.Var: Need(4); break;
                case BtfKind.DeclTag: Need(4); break;
                case BtfKind.Array:
                {
                    int at = Need(12);
                    elem = (int)BinaryPrimitives.ReadUInt32LittleEndian(types[at..]);
                    nelems = BinaryPrimitives.ReadUInt32LittleEndian(types[(at + 8)..]);
                    break;
                }
                case BtfKind.Struct:
                case BtfKind.Union:
                case BtfKind.Datasec:
                {
                    int at = Need(12 * vlen);
                    members = new BtfMember[vlen];
                    for (int i = 0; i < vlen; i++)
                    {
                        var m = types.Slice(at + 12 * i, 12);
                        uint a = BinaryPrimitives.ReadUInt32LittleEndian(m), t = BinaryPrimitives.ReadUInt32LittleEndian(m[4..]), o = BinaryPrimitives.ReadUInt32LittleEndian(m[8..]);
                        // struct member: name, type, bit offset; DATASEC entry: var type, byte offset, size.
                        members[i] = kind == BtfKind.Datasec ? new BtfMember("", (int)a, t, o) : new BtfMember(Str(a), (int)t, o, 0);
                    }
                    break;
                }
                case BtfKind.Enum:
                {
                    int at = Need(8 * vlen);
                    enums = new (string, long)[vlen];
                    for (int i = 0; i < vlen; i++)
                        enums[i] = (Str(BinaryPrimitives.ReadUInt32LittleEndian(types[(at + 8 * i)..])), BinaryPrimitives.ReadInt32LittleEndian(types[(at + 8 * i + 4)..]));
                    break;
                }
                case BtfKind.Enum64:
                {
                    int at = Need(12 * vlen);
                    enums = new (string, long)[vlen];
                    for (int i = 0; i < vlen; i++)
                        enums[i] = (Str(BinaryPrimitives.ReadUInt32LittleEndian(types[(at + 12 * i)..])),
                            (long)((ulong)BinaryPrimitives.ReadUInt32LittleEndian(types[(at + 12 * i + 8)..]) << 32 | BinaryPrimitives.ReadUInt32LittleEndian(types[(at + 12 * i + 4)..])));
                    break;
                }
                case BtfKind.FuncProto: Need(8 * vlen); break;
                case BtfKind.Ptr: case BtfKind.Fwd: case BtfKind.Typedef: case BtfKind.Volatile: case BtfKind.Const:
                case BtfKind.Restrict: case BtfKind.Func: case BtfKind.Float: case BtfKind.TypeTag:
                    break;
                default:
                    throw Bad($"type {id} has unknown kind {(int)kind}");
            }
            btf._types.Add(new BtfType(id, kind, Str(nameOff), sizeOrType, members)
            {
                ElemType = elem, Nelems = nelems, KindFlag = (info >> 31) != 0, IntData = intData, Enumerators = enums,
            });
        }
        return btf;
    }

    /// <summary>Follows typedefs and qualifiers to the type they name (btf__resolve_type / skip_mods_and_typedefs).</summary>
    public BtfType Resolve(int id)
    {
        var t = this[id];
        for (int hops = 0; t.Kind is BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag; hops++)
        {
            if (hops > 32) throw Bad($"type {id}: modifier loop");
            t = this[(int)t.SizeOrType];
        }
        return t;
    }

    /// <summary>The size in bytes of a type (btf__resolve_size).</summary>
    public int SizeOf(int id)
    {
        var t = Resolve(id);
        return t.Kind switch
        {
            BtfKind.Int or BtfKind.Struct or BtfKind.Union or BtfKind.Enum or BtfKind.Enum64 or BtfKind.Float or BtfKind.Datasec => (int)t.SizeOrType,
            BtfKind.Ptr => 8,
            BtfKind.Array => checked((int)t.Nelems * SizeOf(t.ElemType)),
            _ => throw Bad($"type {id} ({t.Kind} {t.Name}) has no size"),
        };
    }

    public BtfType? FindDatasec(string name) => _types.FirstOrDefault(t => t.Kind == BtfKind.Datasec && t.Name == name);
}
