using System.Buffers.Binary;
using System.Text;

namespace Softnet.Xdp.Bpf.Elf;

/// <summary>A section header (Elf64_Shdr) with its name resolved.</summary>
public sealed record ElfSection(int Index, string Name, uint Type, ulong Flags, ulong Offset, ulong Size, uint Link, uint Info, ulong EntSize)
{
    public const uint SHT_PROGBITS = 1, SHT_SYMTAB = 2, SHT_STRTAB = 3, SHT_NOBITS = 8, SHT_REL = 9;
    public const ulong SHF_WRITE = 1, SHF_ALLOC = 2, SHF_EXECINSTR = 4;

    public bool IsCode => Type == SHT_PROGBITS && (Flags & SHF_EXECINSTR) != 0;
}

/// <summary>A symbol (Elf64_Sym) with its name resolved.</summary>
public sealed record ElfSymbol(int Index, string Name, byte Info, ushort SectionIndex, ulong Value, ulong Size)
{
    public const int STT_NOTYPE = 0, STT_OBJECT = 1, STT_FUNC = 2, STT_SECTION = 3;
    public const int STB_LOCAL = 0, STB_GLOBAL = 1, STB_WEAK = 2;

    public int SymType => Info & 0xf;
    public int Binding => Info >> 4;
}

/// <summary>A relocation (Elf64_Rel: BPF objects carry no addends, they are in the instruction).</summary>
public readonly record struct ElfRelocation(ulong Offset, int Symbol, uint Type)
{
    /// <summary>R_BPF_64_64: ld_imm64 of a map or global variable.</summary>
    public const uint R_BPF_64_64 = 1;
    /// <summary>R_BPF_64_ABS64 / ABS32: data words (BTF, .maps inner-map slots).</summary>
    public const uint R_BPF_64_ABS64 = 2, R_BPF_64_ABS32 = 3;
    /// <summary>R_BPF_64_32: the immediate of a BPF-to-BPF call.</summary>
    public const uint R_BPF_64_32 = 10;
}

/// <summary>
/// A minimal reader of the ELF64 little-endian relocatable objects clang emits for <c>-target bpf</c>: section
/// headers, the symbol table and REL sections, every field bounds-checked so a damaged file is a
/// <see cref="BpfObjectException"/>, never an out-of-range read.
/// </summary>
public sealed class ElfFile
{
    public const ushort EM_BPF = 247;
    private const ushort ET_REL = 1;

    public byte[] Image { get; }
    public IReadOnlyList<ElfSection> Sections { get; }
    public IReadOnlyList<ElfSymbol> Symbols { get; }

    private readonly Dictionary<int, List<ElfRelocation>> _relocs = [];

    private ElfFile(byte[] image, List<ElfSection> sections, List<ElfSymbol> symbols)
    {
        Image = image;
        Sections = sections;
        Symbols = symbols;
    }

    /// <summary>The relocations applying to section <paramref name="target"/> (from the SHT_REL sections whose sh_info names it).</summary>
    public IReadOnlyList<ElfRelocation> RelocationsFor(int target) => _relocs.TryGetValue(target, out var l) ? l : [];

    public ElfSection? Section(string name) => Sections.FirstOrDefault(s => s.Name == name);

    /// <summary>The bytes of a section (zeros for SHT_NOBITS, e.g. .bss).</summary>
    public ReadOnlySpan<byte> Data(ElfSection s)
        => s.Type == ElfSection.SHT_NOBITS ? new byte[checked((int)s.Size)] : Image.AsSpan((int)s.Offset, (int)s.Size);

    private static BpfObjectException Bad(string what) => new($"invalid ELF: {what}");

    public static ElfFile Parse(byte[] b)
    {
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
            throw Bad("not an ELF file (bad magic or shorter than the 64-byte header)");
        if (b[4] != 2) throw Bad("not a 64-bit object (EI_CLASS)");
        if (b[5] != 1) throw Bad("not little-endian (EI_DATA); only bpfel objects are supported");
        var h = b.AsSpan();
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(h[16..]);
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(h[18..]);
        if (machine != EM_BPF) throw Bad($"e_machine {machine} is not EM_BPF ({EM_BPF})");
        if (type != ET_REL) throw Bad($"e_type {type} is not ET_REL (a relocatable object from clang -c)");
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(h[0x28..]);
        ushort shentsize = BinaryPrimitives.ReadUInt16LittleEndian(h[0x3a..]);
        ushort shnum = BinaryPrimitives.ReadUInt16LittleEndian(h[0x3c..]);
        ushort shstrndx = BinaryPrimitives.ReadUInt16LittleEndian(h[0x3e..]);
        if (shentsize != 64) throw Bad($"e_shentsize {shentsize} is not 64");
        if (shoff > (ulong)b.Length || (ulong)shnum * 64 > (ulong)b.Length - shoff)
            throw Bad($"section headers ({shnum} at offset {shoff}) run past the end of the file ({b.Length} bytes)");
        if (shstrndx >= shnum) throw Bad($"e_shstrndx {shstrndx} out of range");

        var raw = new (uint Name, uint Type, ulong Flags, ulong Offset, ulong Size, uint Link, uint Info, ulong EntSize)[shnum];
        for (int i = 0; i < shnum; i++)
        {
            var s = h.Slice((int)shoff + i * 64, 64);
            raw[i] = (BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
                BinaryPrimitives.ReadUInt64LittleEndian(s[8..]), BinaryPrimitives.ReadUInt64LittleEndian(s[24..]),
                BinaryPrimitives.ReadUInt64LittleEndian(s[32..]), BinaryPrimitives.ReadUInt32LittleEndian(s[40..]),
                BinaryPrimitives.ReadUInt32LittleEndian(s[44..]), BinaryPrimitives.ReadUInt64LittleEndian(s[56..]));
            if (raw[i].Type != ElfSection.SHT_NOBITS && i != 0 && (raw[i].Offset > (ulong)b.Length || raw[i].Size > (ulong)b.Length - raw[i].Offset))
                throw Bad($"section {i} ({raw[i].Size} bytes at offset {raw[i].Offset}) runs past the end of the file ({b.Length} bytes)");
            if (raw[i].Type == ElfSection.SHT_NOBITS && raw[i].Size > int.MaxValue) throw Bad($"section {i} is too large");
        }
        var shstr = raw[shstrndx];
        string Str((ulong Offset, ulong Size) tab, uint off, string what)
        {
            if (off >= tab.Size) throw Bad($"{what} name offset {off} outside its string table");
            int start = (int)(tab.Offset + off), end = start;
            int limit = (int)(tab.Offset + tab.Size);
            while (end < limit && b[end] != 0) end++;
            return Encoding.UTF8.GetString(b, start, end - start);
        }
        var sections = new List<ElfSection>(shnum);
        for (int i = 0; i < shnum; i++)
        {
            var r = raw[i];
            string name = i == 0 ? "" : Str((shstr.Offset, shstr.Size), r.Name, $"section {i}");
            sections.Add(new ElfSection(i, name, r.Type, r.Flags, r.Offset, r.Size, r.Link, r.Info, r.EntSize));
        }

        var symbols = new List<ElfSymbol>();
        var symtab = sections.FirstOrDefault(s => s.Type == ElfSection.SHT_SYMTAB) ?? throw Bad("no symbol table (.symtab)");
        if (symtab.Link >= shnum) throw Bad("symbol table's string table index out of range");
        var strtab = sections[(int)symtab.Link];
        for (int i = 0; i < (int)(symtab.Size / 24); i++)
        {
            var s = h.Slice((int)symtab.Offset + i * 24, 24);
            uint nameOff = BinaryPrimitives.ReadUInt32LittleEndian(s);
            ushort shndx = BinaryPrimitives.ReadUInt16LittleEndian(s[6..]);
            string name = nameOff == 0 ? "" : Str((strtab.Offset, strtab.Size), nameOff, $"symbol {i}");
            var sym = new ElfSymbol(i, name, s[4], shndx, BinaryPrimitives.ReadUInt64LittleEndian(s[8..]), BinaryPrimitives.ReadUInt64LittleEndian(s[16..]));
            // A section symbol is named for its section (llvm leaves its st_name empty).
            if (sym.SymType == ElfSymbol.STT_SECTION && name.Length == 0 && shndx < shnum) sym = sym with { Name = sections[shndx].Name };
            symbols.Add(sym);
        }

        var elf = new ElfFile(b, sections, symbols);
        foreach (var rel in sections.Where(s => s.Type == ElfSection.SHT_REL))
        {
            if (rel.Info >= shnum) throw Bad($"relocation section {rel.Name} applies to section {rel.Info}, out of range");
            var list = new List<ElfRelocation>((int)(rel.Size / 16));
            for (int i = 0; i < (int)(rel.Size / 16); i++)
            {
                var s = h.Slice((int)rel.Offset + i * 16, 16);
                ulong info = BinaryPrimitives.ReadUInt64LittleEndian(s[8..]);
                int sym = (int)(info >> 32);
                if (sym >= symbols.Count) throw Bad($"relocation {i} in {rel.Name} names symbol {sym}, beyond the symbol table");
                list.Add(new ElfRelocation(BinaryPrimitives.ReadUInt64LittleEndian(s), sym, (uint)info));
            }
            if (elf._relocs.TryGetValue((int)rel.Info, out var existing)) existing.AddRange(list);
            else elf._relocs[(int)rel.Info] = list;
        }
        return elf;
    }
}
