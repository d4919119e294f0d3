using System.Buffers.Binary;
using System.Text;
using Softnet.Xdp.Bpf.Maps;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Xdp.Bpf.Elf;

/// <summary>An object the loader refuses, naming the section and instruction when there is one ("xdp:12: ...").</summary>
public sealed class BpfObjectException(string message) : Exception(message);

/// <summary>
/// One program of an object: its section (<c>xdp</c>, <c>xdp/foo</c>, <c>xdp.frags</c>, ...), function name and
/// instructions after relocation — map handles in ld_imm64, global variables as addresses, the subprograms it
/// calls appended after it with their call offsets fixed.
/// </summary>
public sealed record BpfObjectProgram(string Section, string Name, BpfInsn[] Insns)
{
    /// <summary>An XDP program (SEC("xdp"), "xdp/...", "xdp.frags", "xdp.frags/...").</summary>
    public bool IsXdp => Section == "xdp" || Section.StartsWith("xdp/", StringComparison.Ordinal) || Section.StartsWith("xdp.frags", StringComparison.Ordinal);
}

/// <summary>
/// A clang-built BPF object loaded as libbpf's bpf_object__open + load would (tools/lib/bpf/libbpf.c): maps from
/// BTF definitions in <c>.maps</c> and legacy <c>struct bpf_map_def</c> in <c>maps</c>; global data (.data,
/// .rodata — read-only for programs — and .bss) as one-entry array maps named "&lt;obj&gt;.data" etc.; each program's
/// relocations resolved into the address space all its maps share (<see cref="Space"/>), so the interpreter's
/// plain ld_imm64 loads a map handle or a variable's address and the verifier still knows which it is from src_reg.
/// </summary>
public sealed class BpfObject
{
    private const int BpfObjNameLen = 16;
    private const uint BPF_F_RDONLY_PROG = 0x80, BPF_F_MMAPABLE = 0x400;

    public string Name { get; }
    public string License { get; private set; } = "";
    public IReadOnlyList<BpfObjectProgram> Programs => _programs;
    public IReadOnlyList<BpfMap> Maps => _maps;
    /// <summary>The address space of this object's maps and programs (the verifier's and the interpreter's map table).</summary>
    public BpfRegionTable Space { get; } = new();

    private readonly List<BpfObjectProgram> _programs = [];
    private readonly List<BpfMap> _maps = [];
    private readonly Dictionary<string, BpfMap> _mapBySymbol = [];
    private readonly Dictionary<int, BpfMap> _dataMapBySection = [];

    private static readonly byte[] ZeroKey = new byte[4];

    /// <summary>The parsed file and its BTF (null when compiled without -g), kept for what reads types after loading
    /// (the map dumps' "formatted" member, <see cref="Maps.BpfMapBtf.ForObject"/>).</summary>
    internal ElfFile Elf { get; private set; } = null!;
    internal Btf? Btf { get; private set; }

    private BpfObject(string name) => Name = name;

    public BpfMap? Map(string name) => _maps.FirstOrDefault(m => m.Name == name);

    /// <summary>The program in section (or named) <paramref name="sectionOrName"/>, or the first XDP program when null.</summary>
    public BpfObjectProgram Program(string? sectionOrName = null)
    {
        var p = sectionOrName is null
            ? _programs.FirstOrDefault(p => p.IsXdp) ?? _programs.FirstOrDefault()
            : _programs.FirstOrDefault(p => p.Section == sectionOrName) ?? _programs.FirstOrDefault(p => p.Name == sectionOrName);
        return p ?? throw new BpfObjectException(sectionOrName is null
            ? $"{Name}: no programs"
            : $"{Name}: no program in section or named '{sectionOrName}' (have: {string.Join(", ", _programs.Select(x => x.Section + "/" + x.Name))})");
    }

    /// <summary>The verifier's options for this object's XDP programs: its maps and the given helpers.</summary>
    public BpfVerifierOptions XdpOptions(BpfHelperTable? helpers) => BpfVerifierOptions.Xdp(helpers) with { Maps = Space };

    /// <summary>Verifies a program of this object as XDP; throws <see cref="BpfVerifierException"/> when refused.</summary>
    public BpfProgram LoadProgram(string? sectionOrName, BpfHelperTable? helpers)
        => BpfVerifier.Verify(Program(sectionOrName).Insns, XdpOptions(helpers));

    public static BpfObject Load(string path, int possibleCpus = 0)
        => Load(File.ReadAllBytes(path), Path.GetFileName(path), possibleCpus);

    /// <summary>Opens and relocates an object; <paramref name="fileName"/> names it as libbpf does (up to the first '.').</summary>
    public static BpfObject Load(byte[] image, string fileName = "obj.o", int possibleCpus = 0)
    {
        if (possibleCpus <= 0) possibleCpus = Environment.ProcessorCount;
        string objName = fileName;
        int dot = objName.IndexOf('.');
        if (objName.Length > BpfObjNameLen - 1) objName = objName[..(BpfObjNameLen - 1)];
        if (dot >= 0 && dot < objName.Length) objName = objName[..dot];
        var obj = new BpfObject(objName);
        var elf = ElfFile.Parse(image);
        obj.Elf = elf;
        obj.ReadLicense(elf);
        obj.CreateMaps(elf, possibleCpus);
        obj.CollectPrograms(elf);
        return obj;
    }

    private void ReadLicense(ElfFile elf)
    {
        if (elf.Section("license") is not { } s) return;
        var d = elf.Data(s);
        int end = d.IndexOf((byte)0);
        License = Encoding.ASCII.GetString(end < 0 ? d : d[..end]);
    }

    // ---- maps ----

    private void AddMap(BpfMapSpec spec, int possibleCpus, byte[]? initial)
    {
        BpfMap map;
        try
        {
            map = BpfMapFactory.Create(spec, possibleCpus);
        }
        catch (Exception e) when (e is not BpfObjectException)
        {
            throw new BpfObjectException($"map '{spec.Name}': {e.Message}");
        }
        Space.AddMap(map);
        _maps.Add(map);
        if (initial is { Length: > 0 })
        {
            Span<byte> key = stackalloc byte[4];
            key.Clear();
            long err = map.UserUpdate(key, initial, 0);
            if (err != 0) throw new BpfObjectException($"map '{spec.Name}': cannot set its initial value ({err})");
        }
    }

    private void CreateMaps(ElfFile elf, int possibleCpus)
    {
        Btf? btf = null;
        if (elf.Section(".BTF") is { } btfSec) btf = Btf = Btf.Parse(elf.Data(btfSec));

        // BTF-defined maps: SEC(".maps") variables, each a struct of __uint / __type / __array fields.
        if (elf.Section(".maps") is { } mapsSec)
        {
            var sec = btf?.FindDatasec(".maps") ?? throw new BpfObjectException(".maps: no BTF DATASEC describing it (compile with -g)");
            foreach (var v in sec.Members)
            {
                var var = btf[v.Type];
                if (var.Kind != BtfKind.Var) throw new BpfObjectException($".maps: entry {var.Name} is not a variable");
                var spec = ParseMapDef(btf, var.Name, (int)var.SizeOrType);
                AddMap(spec, possibleCpus, null);
                _mapBySymbol[var.Name] = _maps[^1];
            }
            _ = mapsSec;
        }

        // Legacy maps: SEC("maps") struct bpf_map_def { type, key_size, value_size, max_entries, map_flags }.
        if (elf.Section("maps") is { } legacy)
        {
            var syms = elf.Symbols.Where(s => s.SectionIndex == legacy.Index && s.SymType != ElfSymbol.STT_SECTION && s.Name.Length > 0)
                .OrderBy(s => s.Value).ToList();
            if (syms.Count > 0)
            {
                var data = elf.Data(legacy);
                int defSize = data.Length / syms.Count;
                if (defSize < 16 || data.Length % syms.Count != 0)
                    throw new BpfObjectException($"maps: {data.Length} bytes do not divide into {syms.Count} struct bpf_map_def");
                foreach (var s in syms)
                {
                    if (s.Value + (ulong)defSize > (ulong)data.Length) throw new BpfObjectException($"maps: {s.Name} lies outside the section");
                    var d = data.Slice((int)s.Value, defSize).ToArray();
                    uint U(int i) => BinaryPrimitives.ReadUInt32LittleEndian(d[(i * 4)..]);
                    var spec = new BpfMapSpec(s.Name, (BpfMapType)U(0), (int)U(1), (int)U(2), (int)U(3), defSize >= 20 ? U(4) : 0);
                    AddMap(spec, possibleCpus, null);
                    _mapBySymbol[s.Name] = _maps[^1];
                }
            }
        }

        // Global data (bpf_object__init_global_data_maps): one-entry arrays holding the section's bytes.
        foreach (var s in elf.Sections)
        {
            string? kind = IsDataSection(s.Name, ".rodata") ? ".rodata" : IsDataSection(s.Name, ".data") ? ".data" : IsDataSection(s.Name, ".bss") ? ".bss" : null;
            if (kind is null || s.Size == 0 || (s.Flags & ElfSection.SHF_ALLOC) == 0) continue;
            uint flags = BPF_F_MMAPABLE | (kind == ".rodata" ? BPF_F_RDONLY_PROG : 0);
            var bytes = elf.Data(s).ToArray();
            var spec = new BpfMapSpec(InternalMapName(s.Name), BpfMapType.Array, 4, bytes.Length, 1, flags) { InitialValue = kind == ".bss" ? null : bytes };
            AddMap(spec, possibleCpus, spec.InitialValue);
            _dataMapBySection[s.Index] = _maps[^1];
        }
    }

    private static bool IsDataSection(string name, string prefix)
        => name == prefix || name.StartsWith(prefix + ".", StringComparison.Ordinal);

    /// <summary>libbpf's internal_map_name: as much of the object name as fits before the section name in 15 bytes.</summary>
    private string InternalMapName(string section)
    {
        int pfx = Math.Max(0, Math.Min(BpfObjNameLen - section.Length - 1, Name.Length));
        var sb = new StringBuilder(Name[..pfx] + section);
        if (sb.Length > BpfObjNameLen - 1) sb.Length = BpfObjNameLen - 1;
        for (int i = 0; i < sb.Length; i++)
            if (!char.IsAsciiLetterOrDigit(sb[i]) && sb[i] != '_' && sb[i] != '.') sb[i] = '_';
        return sb.ToString();
    }

    /// <summary>parse_btf_map_def: the fields of a BTF map definition struct.</summary>
    private static BpfMapSpec ParseMapDef(Btf btf, string name, int typeId)
    {
        var def = btf.Resolve(typeId);
        if (def.Kind != BtfKind.Struct) throw new BpfObjectException($"map '{name}': definition is a {def.Kind}, not a struct");
        uint type = 0, maxEntries = 0, flags = 0;
        int keySize = -1, valueSize = -1;
        BpfMapSpec? inner = null;
        foreach (var m in def.Members)
        {
            var mt = btf.Resolve(m.Type);
            uint Uint()
            {
                // __uint(name, val) is `int (*name)[val]`: a pointer to an array whose length is the value.
                if (mt.Kind != BtfKind.Ptr) throw new BpfObjectException($"map '{name}': field {m.Name} is not a __uint");
                var arr = btf.Resolve((int)mt.SizeOrType);
                if (arr.Kind != BtfKind.Array) throw new BpfObjectException($"map '{name}': field {m.Name} is not a __uint");
                return arr.Nelems;
            }
            int TypeSize()
            {
                if (mt.Kind != BtfKind.Ptr) throw new BpfObjectException($"map '{name}': field {m.Name} is not a __type");
                return btf.SizeOf((int)mt.SizeOrType);
            }
            switch (m.Name)
            {
                case "type": type = Uint(); break;
                case "max_entries": maxEntries = Uint(); break;
                case "map_flags": flags = Uint(); break;
                case "key_size": keySize = Check(keySize, (int)Uint(), "key"); break;
                case "value_size": valueSize = Check(valueSize, (int)Uint(), "value"); break;
                case "key": keySize = Check(keySize, TypeSize(), "key"); break;
                case "value": valueSize = Check(valueSize, TypeSize(), "value"); break;
                case "values":
                {
                    // __array(values, struct inner_def): an array of pointers to the inner map's definition.
                    if (mt.Kind != BtfKind.Array) throw new BpfObjectException($"map '{name}': values is not an __array");
                    var ptr = btf.Resolve(mt.ElemType);
                    if (ptr.Kind != BtfKind.Ptr) throw new BpfObjectException($"map '{name}': values is not an array of pointers");
                    var target = btf.Resolve((int)ptr.SizeOrType);
                    if (target.Kind == BtfKind.Struct) inner = ParseMapDef(btf, name + ".inner", target.Id);
                    valueSize = Check(valueSize, 4, "value");
                    break;
                }
                case "numa_node": case "pinning": case "map_extra": Uint(); break;
                default: throw new BpfObjectException($"map '{name}': unknown field '{m.Name}'");
            }

            int Check(int old, int now, string what)
            {
                if (old >= 0 && old != now) throw new BpfObjectException($"map '{name}': conflicting {what} size {old} != {now}");
                return now;
            }
        }
        return new BpfMapSpec(name, (BpfMapType)type, Math.Max(keySize, 0), Math.Max(valueSize, 0), (int)maxEntries, flags) { Inner = inner };
    }

    // ---- programs ----

    private sealed record Func(ElfSection Section, string Name, int Start, int Count);

    private void CollectPrograms(ElfFile elf)
    {
        var funcs = new Dictionary<int, List<Func>>();
        var code = new Dictionary<int, BpfInsn[]>();
        foreach (var s in elf.Sections.Where(s => s.IsCode && s.Size > 0))
        {
            if (s.Size % BpfInsn.Size != 0) throw new BpfObjectException($"{s.Name}: size {s.Size} is not a multiple of {BpfInsn.Size}");
            code[s.Index] = BpfInsn.Decode(elf.Data(s));
            var syms = elf.Symbols.Where(x => x.SectionIndex == s.Index && x.SymType == ElfSymbol.STT_FUNC).OrderBy(x => x.Value).ToList();
            var list = new List<Func>();
            for (int i = 0; i < syms.Count; i++)
            {
                int start = (int)(syms[i].Value / BpfInsn.Size);
                int count = syms[i].Size > 0 ? (int)(syms[i].Size / BpfInsn.Size)
                    : (i + 1 < syms.Count ? (int)(syms[i + 1].Value / BpfInsn.Size) : code[s.Index].Length) - start;
                if (start < 0 || count <= 0 || start + count > code[s.Index].Length)
                    throw new BpfObjectException($"{s.Name}: function {syms[i].Name} lies outside its section");
                list.Add(new Func(s, syms[i].Name, start, count));
            }
            funcs[s.Index] = list;
        }
        foreach (var (sec, list) in funcs)
        {
            if (elf.Sections[sec].Name == ".text") continue;   // subprograms only, as libbpf treats them
            foreach (var f in list) _programs.Add(new BpfObjectProgram(f.Section.Name, f.Name, Relocate(elf, f, funcs, code)));
        }
    }

    /// <summary>
    /// bpf_object__relocate for one program: the entry function's instructions, then every subprogram reached by a
    /// BPF-to-BPF call appended once, each call's immediate re-aimed at the appended copy; ld_imm64 of a map symbol
    /// becomes the map's handle (src_reg BPF_PSEUDO_MAP_FD), of a global variable its address (BPF_PSEUDO_MAP_VALUE).
    /// </summary>
    private BpfInsn[] Relocate(ElfFile elf, Func main, Dictionary<int, List<Func>> funcs, Dictionary<int, BpfInsn[]> code)
    {
        var output = new List<BpfInsn>();
        var placed = new Dictionary<(int Sec, int Start), int>();
        var queue = new List<(Func F, int Base)>();
        void Place(Func f)
        {
            placed[(f.Section.Index, f.Start)] = output.Count;
            queue.Add((f, output.Count));
            output.AddRange(code[f.Section.Index].AsSpan(f.Start, f.Count));
        }
        Place(main);
        for (int q = 0; q < queue.Count; q++)
        {
            var (f, bas) = queue[q];
            var secName = f.Section.Name;
            var relocs = new Dictionary<ulong, ElfRelocation>();
            foreach (var r in elf.RelocationsFor(f.Section.Index)) relocs[r.Offset] = r;
            for (int j = 0; j < f.Count; j++)
            {
                int si = f.Start + j, at = bas + j;
                var insn = output[at];
                BpfObjectException Bad(string why) => new($"{secName}:{si}: {why}");
                bool hasReloc = relocs.TryGetValue((ulong)si * BpfInsn.Size, out var rel);
                bool pseudoCall = insn.Code == (BPF_JMP | BPF_CALL) && insn.Src == BPF_PSEUDO_CALL;
                if (hasReloc)
                {
                    var sym = elf.Symbols[rel.Symbol];
                    string symName = sym.Name.Length > 0 ? sym.Name : $"#{rel.Symbol}";
                    if (sym.SectionIndex == 0 || sym.SectionIndex >= elf.Sections.Count)
                        throw Bad($"relocation against unknown symbol {symName}");
                    if (insn.IsLdImm64)
                    {
                        if (rel.Type != ElfRelocation.R_BPF_64_64) throw Bad($"relocation type {rel.Type} on ld_imm64 against {symName}");
                        if (j + 1 >= f.Count) throw Bad("ld_imm64 is cut off at the end of its function");
                        ulong value;
                        int src;
                        if (_mapBySymbol.TryGetValue(sym.Name, out var map) && elf.Sections[sym.SectionIndex].Name is ".maps" or "maps")
                        {
                            value = BpfMemory.Address(BpfMemory.MapRegion, _maps.IndexOf(map));
                            src = BPF_PSEUDO_MAP_FD;
                        }
                        else if (_dataMapBySection.TryGetValue(sym.SectionIndex, out var data))
                        {
                            long off = (long)insn.Imm + (long)sym.Value;
                            if (off < 0 || off >= data.ValueSize) throw Bad($"relocation against {symName} at offset {off}, outside {data.Name} ({data.ValueSize} bytes)");
                            value = data.Lookup(ZeroKey, 0) + (ulong)off;
                            src = BPF_PSEUDO_MAP_VALUE;
                        }
                        else throw Bad($"relocation against symbol {symName} in section {elf.Sections[sym.SectionIndex].Name}, which is no map or global data");
                        output[at] = new BpfInsn(insn.Code, insn.Dst, src, insn.Off, (int)(uint)value);
                        output[at + 1] = output[at + 1] with { Imm = (int)(uint)(value >> 32) };
                        j++;
                        continue;
                    }
                    if (!pseudoCall) throw Bad($"relocation against {symName} on an instruction that is neither ld_imm64 nor a call ({insn})");
                    if (!funcs.TryGetValue(sym.SectionIndex, out var tfuncs)) throw Bad($"call to {symName} in section {elf.Sections[sym.SectionIndex].Name}, which holds no code");
                    // Section symbol: the immediate is the target's offset from it; function symbol: imm is -1.
                    long target = (long)(sym.Value / BpfInsn.Size) + insn.Imm + 1;
                    output[at] = insn with { Imm = CallTo(tfuncs, sym.SectionIndex, target, at, Bad) };
                    continue;
                }
                if (pseudoCall)
                {
                    long target = si + 1L + insn.Imm;
                    output[at] = insn with { Imm = CallTo(funcs[f.Section.Index], f.Section.Index, target, at, Bad) };
                    continue;
                }
                if (insn.IsLdImm64)
                {
                    if (insn.Src != 0) throw Bad($"ld_imm64 with src_reg {insn.Src} and no relocation");
                    j++;
                }
            }
        }
        return output.ToArray();

        int CallTo(List<Func> tfuncs, int sec, long target, int at, Func<string, BpfObjectException> bad)
        {
            var callee = tfuncs.FirstOrDefault(x => x.Start == target)
                ?? throw bad($"call to instruction {target} of {elf.Sections[sec].Name}, which starts no function");
            if (!placed.TryGetValue((sec, callee.Start), out int pos))
            {
                pos = output.Count;
                Place(callee);
            }
            return pos - at - 1;
        }
    }
}
