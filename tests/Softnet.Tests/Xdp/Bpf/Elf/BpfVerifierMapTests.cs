using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Tests.Xdp.Bpf.Elf;

/// <summary>
/// The verifier with maps: map handles and values from ld_imm64, lookups that may return NULL until compared with 0
/// (every copy at once), value bounds, read-only global data, helper arguments, and packet pointers dying at a
/// helper that moves packet data. Messages are the kernel's.
/// </summary>
public class BpfVerifierMapTests
{
    private readonly BpfRegionTable _space = new();
    private readonly ulong _array;     // key 4, value 8, 4 entries
    private readonly ulong _rodata;    // value address of a read-only one-entry array, 8 bytes
    private readonly BpfHelperTable _helpers = BpfTestPrograms.MapHelpers();

    public BpfVerifierMapTests()
    {
        _array = _space.AddMap(BpfMapFactory.Create(new BpfMapSpec("a", BpfMapType.Array, 4, 8, 4), 1));
        var ro = BpfMapFactory.Create(new BpfMapSpec("r.rodata", BpfMapType.Array, 4, 8, 1, 0x80), 1);
        _space.AddMap(ro);
        ro.UserUpdate(new byte[4], BitConverter.GetBytes(7UL), 0);
        _rodata = ro.Lookup(new byte[4], 0);
        // A helper that moves packet data (bpf_xdp_adjust_head's prototype).
        _helpers.Register(new BpfHelper(44, "xdp_adjust_head", [BpfArg.PtrToCtx, BpfArg.Anything], BpfRet.Integer,
            static (ref BpfMemory _, ulong _, ulong _, ulong _, ulong _, ulong _) => 0) { ChangesPacketData = true });
    }

    private BpfVerifierOptions Options => BpfVerifierOptions.Xdp(_helpers) with { Maps = _space };

    private static IEnumerable<BpfInsn> Ld(int dst, int src, ulong v)
    {
        yield return new BpfInsn(BPF_LD | BPF_IMM | BPF_DW, dst, src, 0, (int)(uint)v);
        yield return new BpfInsn(0, 0, 0, 0, (int)(uint)(v >> 32));
    }

    private static BpfInsn Mov(int dst, int imm) => new(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
    private static BpfInsn MovX(int dst, int src) => new(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
    private static BpfInsn AddI(int dst, int imm) => new(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm);
    private static BpfInsn StW(int dst, short off, int imm) => new(BPF_ST | BPF_MEM | BPF_W, dst, 0, off, imm);
    private static BpfInsn LdxDw(int dst, int src, short off) => new(BPF_LDX | BPF_MEM | BPF_DW, dst, src, off, 0);
    private static BpfInsn LdxW(int dst, int src, short off) => new(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0);
    private static BpfInsn LdxB(int dst, int src, short off) => new(BPF_LDX | BPF_MEM | BPF_B, dst, src, off, 0);
    private static BpfInsn StxDw(int dst, int src, short off) => new(BPF_STX | BPF_MEM | BPF_DW, dst, src, off, 0);
    private static BpfInsn JeqI(int dst, int imm, short off) => new(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, off, imm);
    private static BpfInsn JgtX(int dst, int src, short off) => new(BPF_JMP | BPF_JGT | BPF_X, dst, src, off, 0);
    private static BpfInsn Call(int id) => new(BPF_JMP | BPF_CALL, 0, 0, 0, id);
    private static readonly BpfInsn Exit = new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

    /// <summary>key = 0 on the stack at fp-4, r2 = &key, r1 = the array map, call lookup.</summary>
    private IEnumerable<BpfInsn> Lookup()
    {
        yield return StW(10, -4, 0);
        yield return MovX(2, 10);
        yield return AddI(2, -4);
        foreach (var i in Ld(1, BPF_PSEUDO_MAP_FD, _array)) yield return i;
        yield return Call(1);
    }

    private string Refusal(IEnumerable<BpfInsn> prog)
        => Assert.Throws<BpfVerifierException>(() => BpfVerifier.Verify(prog.ToArray(), Options)).Message;

    private BpfProgram Load(IEnumerable<BpfInsn> prog) => BpfVerifier.Verify(prog.ToArray(), Options);

    [Fact]
    public void Lookup_result_must_be_null_checked_before_use()
    {
        Assert.Equal("6: R0 invalid mem access 'map_value_or_null'", Refusal([.. Lookup(), LdxDw(0, 0, 0), Exit]));
        Assert.Equal("6: R0 pointer arithmetic on map_value_or_null prohibited, null-check it first", Refusal([.. Lookup(), AddI(0, 8), Exit]));
    }

    [Fact]
    public void A_null_check_on_one_copy_makes_every_copy_a_map_value()
    {
        // r6 = r0; if r0 == 0 goto out; r0 = *(u64 *)(r6 + 0); exit; out: r0 = 2; exit
        var prog = Load([.. Lookup(), MovX(6, 0), JeqI(0, 0, 2), LdxDw(0, 6, 0), Exit, Mov(0, 2), Exit]);
        var frame = new byte[64];
        Assert.Equal(XdpAction.Aborted, BpfTestPrograms.Run(prog, frame).Action);   // value 0 is XDP_ABORTED
        var map = _space.MapAt(_array)!;
        map.UserUpdate(new byte[4], BitConverter.GetBytes(3UL), 0);
        Assert.Equal(XdpAction.Tx, BpfTestPrograms.Run(prog, frame).Action);
    }

    [Fact]
    public void The_null_side_is_a_zero_scalar()
    {
        // On the == 0 side R0 is the scalar 0 and cannot be dereferenced.
        Assert.Equal("8: R0 invalid mem access 'scalar'", Refusal([.. Lookup(), JeqI(0, 0, 1), Exit, LdxDw(0, 0, 0), Exit]));
    }

    [Fact]
    public void Value_accesses_are_bounded_by_value_size()
    {
        Assert.Equal("7: invalid access to map value, value_size=8 off=4 size=8",
            Refusal([.. Lookup(), JeqI(0, 0, 2), LdxDw(0, 0, 4), Exit, Mov(0, 2), Exit]));
        Assert.Equal("7: invalid access to map value, value_size=8 off=-1 size=1",
            Refusal([.. Lookup(), JeqI(0, 0, 2), LdxB(0, 0, -1), Exit, Mov(0, 2), Exit]));
        Load([.. Lookup(), JeqI(0, 0, 2), LdxB(0, 0, 7), Exit, Mov(0, 2), Exit]);
    }

    [Fact]
    public void Read_only_global_data_is_read_as_its_constant_and_refuses_writes()
    {
        // r1 = &rodata; r0 = *(u64 *)(r1 + 0): the verifier knows r0 == 7, so the branch to an invalid access is dead.
        Load([.. Ld(1, BPF_PSEUDO_MAP_VALUE, _rodata), LdxDw(0, 1, 0), JeqI(0, 7, 1), LdxDw(0, 0, 0), Mov(0, 2), Exit]);
        Assert.Equal("2: write into map forbidden, value_size=8 off=0 size=8",
            Refusal([.. Ld(1, BPF_PSEUDO_MAP_VALUE, _rodata), StxDw(1, 10, 0), Mov(0, 2), Exit]));
        Assert.Equal("2: invalid access to map value, value_size=8 off=8 size=4",
            Refusal([.. Ld(1, BPF_PSEUDO_MAP_VALUE, _rodata), LdxW(0, 1, 8), Exit]));
    }

    [Fact]
    public void Map_handles_are_only_for_helpers()
    {
        Assert.Equal("2: R1 invalid mem access 'map_ptr'", Refusal([.. Ld(1, BPF_PSEUDO_MAP_FD, _array), LdxDw(0, 1, 0), Exit]));
        Assert.Equal("2: R1 pointer arithmetic on map_ptr prohibited", Refusal([.. Ld(1, BPF_PSEUDO_MAP_FD, _array), AddI(1, 8), Exit]));
        Assert.Equal("0: fd 99 is not pointing to valid bpf_map", Refusal([.. Ld(1, BPF_PSEUDO_MAP_FD, BpfMemory.Address(BpfMemory.MapRegion, 99)), Mov(0, 2), Exit]));
    }

    [Fact]
    public void Helper_arguments_are_checked_by_kind()
    {
        // R1 must be a map.
        Assert.Equal("3: R1 type=scalar expected=map_ptr", Refusal([MovX(2, 10), AddI(2, -4), Mov(1, 0), Call(1), Exit]));
        // The key must be memory of key_size: a scalar is not, and 4 bytes at fp-2 leave the stack.
        Assert.Equal("3: R2 type=scalar expected=fp, pkt, pkt_meta, map_value, mem",
            Refusal([.. Ld(1, BPF_PSEUDO_MAP_FD, _array), Mov(2, 0), Call(1), Exit]));
        Assert.Equal("4: invalid indirect access to stack R2 off=-2 size=4",
            Refusal([.. Ld(1, BPF_PSEUDO_MAP_FD, _array), MovX(2, 10), AddI(2, -2), Call(1), Exit]));
        // update: the value must be 8 bytes of readable memory; a key on the packet must be proven in bounds.
        Assert.Equal("7: invalid indirect access to stack R3 off=-4 size=8",
            Refusal([.. Ld(1, BPF_PSEUDO_MAP_FD, _array), MovX(2, 10), AddI(2, -8), MovX(3, 10), AddI(3, -4), Mov(4, 0), Call(2), Exit]));
        Assert.Equal("4: invalid access to packet, off=0 size=4, R2(id=0,off=0,r=0)\nR2 offset is outside of the packet",
            Refusal([LdxW(2, 1, 0), .. Ld(1, BPF_PSEUDO_MAP_FD, _array), Mov(0, 0), Call(1), Exit]));
        // Helpers return their kind of value and clobber R1-R5.
        Assert.Equal("6: R2 !read_ok", Refusal([.. Lookup(), MovX(0, 2), Exit]));
    }

    [Fact]
    public void Packet_pointers_die_at_a_helper_that_changes_packet_data()
    {
        // r6 = data; r7 = data_end; check 1 byte; save ctx; adjust_head; read through r6 -> refused.
        BpfInsn[] prefix =
        [
            MovX(9, 1), LdxW(6, 1, 0), LdxW(7, 1, 4), MovX(8, 6), AddI(8, 1), JgtX(8, 7, 5),
            MovX(1, 9), Mov(2, 0), Call(44),
        ];
        Assert.Equal("9: R6 invalid mem access 'scalar'", Refusal([.. prefix, LdxB(0, 6, 0), Exit, Mov(0, 2), Exit]));
        // Without the helper, the same read is fine.
        Load([.. prefix[..6], Mov(0, 0), Mov(0, 0), Mov(0, 0), LdxB(0, 6, 0), Exit, Mov(0, 2), Exit]);
    }

    /// <summary>An array of maps, for the verifier only: its lookups are never run.</summary>
    private sealed class OuterStub(BpfMapSpec spec) : BpfMap(spec)
    {
        public override void Bind(BpfRegionTable space) { }
        public override ulong Lookup(ReadOnlySpan<byte> key, int cpu) => 0;
        public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu) => -22;
        public override long Delete(ReadOnlySpan<byte> key) => -22;
        public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value) => false;
        public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags) => -22;
        public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => false;
    }

    [Fact]
    public void A_lookup_in_an_array_of_maps_gives_the_inner_map_or_null_typed_by_its_template()
    {
        var inner = new BpfMapSpec("inner", BpfMapType.Array, 4, 16, 8);
        ulong outer = _space.AddMap(new OuterStub(new BpfMapSpec("outer", BpfMapType.ArrayOfMaps, 4, 4, 2) { Inner = inner }));
        IEnumerable<BpfInsn> LookupIn(ulong map)
        {
            yield return StW(10, -4, 0);
            yield return MovX(2, 10);
            yield return AddI(2, -4);
            foreach (var i in Ld(1, BPF_PSEUDO_MAP_FD, map)) yield return i;
            yield return Call(1);
        }
        // Using the inner map before the null check.
        Assert.Equal("9: R1 type=map_ptr_or_null expected=map_ptr",
            Refusal([.. LookupIn(outer), MovX(1, 0), MovX(2, 10), AddI(2, -4), Call(1), Exit]));
        // After it: the inner lookup's value is 16 bytes (the template's), so off 8 size 8 is fine and off 16 is not.
        BpfInsn[] prefix = [.. LookupIn(outer), JeqI(0, 0, 7), MovX(1, 0), MovX(2, 10), AddI(2, -4), Call(1), JeqI(0, 0, 2)];
        Load([.. prefix, LdxDw(0, 0, 8), Exit, Mov(0, 2), Exit]);
        Assert.Equal("12: invalid access to map value, value_size=16 off=16 size=8",
            Refusal([.. prefix, LdxDw(0, 0, 16), Exit, Mov(0, 2), Exit]));
    }
}
