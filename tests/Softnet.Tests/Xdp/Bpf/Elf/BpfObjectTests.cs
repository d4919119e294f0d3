using System.Buffers.Binary;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Elf;
using Xunit;
using static Softnet.Tests.Xdp.Bpf.Elf.BpfTestPrograms;

namespace Softnet.Tests.Xdp.Bpf.Elf;

/// <summary>
/// The loader on clang-built objects: programs by section and name, BTF and legacy maps, global data, BPF-to-BPF
/// calls, each verified and run; damaged objects refused with the section and instruction named.
/// </summary>
public class BpfObjectTests
{
    [Fact]
    public void Udp_drop_by_port_parses_and_counts_in_a_btf_array_map()
    {
        var obj = BpfObject.Load(Object("drop_port"));
        Assert.Equal("GPL", obj.License);
        var p = obj.Program();
        Assert.Equal(("xdp", "drop_port"), (p.Section, p.Name));
        var map = Assert.Single(obj.Maps);
        Assert.Equal(("verdicts", Softnet.Xdp.Bpf.Maps.BpfMapType.Array, 4, 8, 4), (map.Name, map.Type, map.KeySize, map.ValueSize, map.MaxEntries));
        var prog = obj.LoadProgram("xdp", MapHelpers());
        Assert.Equal(XdpAction.Drop, Run(prog, Udp4(9)).Action);
        Assert.Equal(XdpAction.Pass, Run(prog, Udp4(53)).Action);
        Assert.Equal(XdpAction.Pass, Run(prog, Udp4(53)).Action);
        var arp = Udp4(9);
        arp[12] = 0x08; arp[13] = 0x06;
        Assert.Equal(XdpAction.Pass, Run(prog, arp).Action);
        Assert.Equal(XdpAction.Pass, Run(prog, Udp4(9)[..40]).Action);   // truncated UDP header
        Assert.Equal(1UL, U64(map, 1));
        Assert.Equal(2UL, U64(map, 2));
        Assert.Equal(0UL, U64(map, 0));
    }

    [Fact]
    public void Counter_in_a_section_with_a_suffix_swaps_macs_and_transmits()
    {
        var obj = BpfObject.Load(Object("counter"));
        var prog = obj.LoadProgram("xdp/counter", MapHelpers());
        Assert.Same(obj.Program("count_and_tx"), obj.Program("xdp/counter"));
        var frame = Udp4(53);
        var (action, output) = Run(prog, frame);
        Assert.Equal(XdpAction.Tx, action);
        Assert.Equal(frame[6..12], output[0..6]);
        Assert.Equal(frame[0..6], output[6..12]);
        Run(prog, Udp4(53, 100));
        var stats = obj.Map("stats")!;
        Assert.Equal(16, stats.ValueSize);
        var v = new byte[16];
        Assert.True(stats.UserLookup(new byte[4], v));
        Assert.Equal(2UL, BinaryPrimitives.ReadUInt64LittleEndian(v));
        Assert.Equal((ulong)(frame.Length * 2 + 82), BinaryPrimitives.ReadUInt64LittleEndian(v.AsSpan(8)));
    }

    [Fact]
    public void Global_data_sections_are_one_entry_arrays_named_as_libbpf_names_them()
    {
        var obj = BpfObject.Load(Bytes("globals"), "globals.o");
        Assert.Equal(["globals.rodata", "globals.data", "globals.bss"], obj.Maps.Select(m => m.Name).OrderBy(n => n.Contains("bss") ? 2 : n.Contains("data") && !n.Contains("ro") ? 1 : 0));
        var rodata = obj.Map("globals.rodata")!;
        Assert.True(rodata.Spec.ReadOnlyForProgram);
        Assert.Equal(60UL, U64Le32(rodata));
        var prog = obj.LoadProgram(null, MapHelpers());
        Assert.Equal(XdpAction.Drop, Run(prog, new byte[59]).Action);
        Assert.Equal(XdpAction.Pass, Run(prog, new byte[60]).Action);
        Assert.Equal(102UL, U64(obj.Map("globals.data")!, 0));
        var bss = new byte[16];
        Assert.True(obj.Map("globals.bss")!.UserLookup(new byte[4], bss));
        Assert.Equal(60u, BinaryPrimitives.ReadUInt32LittleEndian(bss));            // last_len (clang puts it first)
        Assert.Equal(1UL, BinaryPrimitives.ReadUInt64LittleEndian(bss.AsSpan(8)));  // short_frames

        // A .rodata value set before the program is loaded (as a skeleton does before load) is what it reads.
        var obj2 = BpfObject.Load(Bytes("globals"), "globals.o");
        obj2.Map("globals.rodata")!.UserUpdate(new byte[4], BitConverter.GetBytes(100u), 0);
        var prog2 = obj2.LoadProgram(null, MapHelpers());
        Assert.Equal(XdpAction.Drop, Run(prog2, new byte[80]).Action);
    }

    private static ulong U64Le32(Softnet.Xdp.Bpf.Maps.BpfMap map)
    {
        var v = new byte[map.ValueSize];
        Assert.True(map.UserLookup(new byte[4], v));
        return BinaryPrimitives.ReadUInt32LittleEndian(v);
    }

    [Fact]
    public void Global_variable_loads_are_map_values_and_rodata_refuses_writes()
    {
        var obj = BpfObject.Load(Bytes("globals"), "globals.o");
        var insns = obj.Program().Insns;
        // The relocated ld_imm64 of min_len (.rodata) keeps src_reg BPF_PSEUDO_MAP_VALUE; turn the load after it into a store.
        ulong rodata = obj.Map("globals.rodata")!.Lookup(new byte[4], 0);
        int ld = -1;
        for (int i = 0; i + 1 < insns.Length; i++)
            if (insns[i].IsLdImm64 && insns[i].Src == BpfOp.BPF_PSEUDO_MAP_VALUE && ((uint)insns[i].Imm | ((ulong)(uint)insns[i + 1].Imm << 32)) == rodata)
                ld = i;
        Assert.True(ld >= 0);
        var patched = (BpfInsn[])insns.Clone();
        var load = patched[ld + 2];
        patched[ld + 2] = new BpfInsn(BpfOp.BPF_STX | BpfOp.BPF_MEM | BpfOp.BPF_W, load.Src, load.Src, 0, 0);
        var e = Assert.Throws<BpfVerifierException>(() => BpfVerifier.Verify(patched, obj.XdpOptions(MapHelpers())));
        Assert.Equal($"{ld + 2}: write into map forbidden, value_size=4 off=0 size=4", e.Message);
    }

    [Fact]
    public void Bpf_to_bpf_calls_append_the_text_subprograms_to_each_program()
    {
        var obj = BpfObject.Load(Object("subprog"));
        Assert.Equal("Dual BSD/GPL", obj.License);
        Assert.Equal(["xdp/odd_drops", "xdp.frags/even_drops"], obj.Programs.Select(p => p.Section + "/" + p.Name).Order().Reverse());
        foreach (var (section, oddVerdict) in new[] { ("xdp", XdpAction.Drop), ("xdp.frags", XdpAction.Pass) })
        {
            var p = obj.Program(section);
            Assert.True(p.IsXdp);
            Assert.Equal(3 + 13 + 9, p.Insns.Length);   // entry, verdict_for, first_byte
            var prog = obj.LoadProgram(section, MapHelpers());
            var frame = Udp4(1);
            frame[0] = 0x03;
            Assert.Equal(oddVerdict, Run(prog, frame).Action);
            frame[0] = 0x02;
            Assert.Equal(oddVerdict == XdpAction.Drop ? XdpAction.Pass : XdpAction.Drop, Run(prog, frame).Action);
        }
    }

    [Fact]
    public void Legacy_map_definitions_in_the_maps_section()
    {
        var obj = BpfObject.Load(Object("legacy_maps"));
        var map = Assert.Single(obj.Maps);
        Assert.Equal(("rx_count", 4, 8, 2), (map.Name, map.KeySize, map.ValueSize, map.MaxEntries));
        var prog = obj.LoadProgram(null, MapHelpers());
        Run(prog, Udp4(1), rxQueue: 3);
        Run(prog, Udp4(1), rxQueue: 2);
        Run(prog, Udp4(1), rxQueue: 1);
        Assert.Equal(1UL, U64(map, 0));
        Assert.Equal(2UL, U64(map, 1));
    }

    [Fact]
    public void Relocation_against_an_undefined_symbol_names_section_and_instruction()
    {
        var e = Assert.Throws<BpfObjectException>(() => BpfObject.Load(Object("bad_extern")));
        Assert.Equal("xdp:0: relocation against unknown symbol nowhere", e.Message);
    }

    [Fact]
    public void Truncated_and_damaged_objects_are_refused_with_what_is_wrong()
    {
        var bytes = Bytes("drop_port");
        Assert.Equal("invalid ELF: not an ELF file (bad magic or shorter than the 64-byte header)",
            Assert.Throws<BpfObjectException>(() => BpfObject.Load(bytes[..40])).Message);
        var e = Assert.Throws<BpfObjectException>(() => BpfObject.Load(bytes[..(bytes.Length / 2)]));
        Assert.StartsWith("invalid ELF: section headers", e.Message);
        var notBpf = (byte[])bytes.Clone();
        notBpf[18] = 62;
        Assert.Equal("invalid ELF: e_machine 62 is not EM_BPF (247)", Assert.Throws<BpfObjectException>(() => BpfObject.Load(notBpf)).Message);

        // A relocation whose symbol index lies beyond the symbol table.
        var elf = ElfFile.Parse(bytes);
        var rel = elf.Sections.First(s => s.Name == ".relxdp");
        var broken = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(broken.AsSpan((int)rel.Offset + 12), 9999);
        Assert.Equal("invalid ELF: relocation 0 in .relxdp names symbol 9999, beyond the symbol table",
            Assert.Throws<BpfObjectException>(() => BpfObject.Load(broken)).Message);

        // A relocation moved onto an instruction that is neither ld_imm64 nor a call.
        var moved = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(moved.AsSpan((int)rel.Offset), 0);
        var m = Assert.Throws<BpfObjectException>(() => BpfObject.Load(moved));
        Assert.StartsWith("xdp:0: relocation against verdicts on an instruction that is neither ld_imm64 nor a call", m.Message);
    }

    [Fact]
    public void Unknown_program_names_list_what_the_object_has()
    {
        var obj = BpfObject.Load(Object("subprog"));
        var e = Assert.Throws<BpfObjectException>(() => obj.Program("tc"));
        Assert.Contains("no program in section or named 'tc'", e.Message);
        Assert.Contains("xdp.frags/even_drops", e.Message);
    }
}
