using System.Runtime.CompilerServices;

namespace Softnet.Xdp.Bpf;

/// <summary>
/// The address space a program runs in. A BPF pointer is a 64-bit value whose high 32 bits name a region and
/// whose low 32 bits are the offset in it, so pointer arithmetic works as the program expects while every
/// load and store is checked against the one region it names (the kernel proves this statically; the
/// interpreter checks again and reports a fault instead of touching anything else). Region 0 is never valid,
/// so NULL and small scalars fault.
/// <list type="bullet">
/// <item>region 1, the packet: the whole RX buffer from data_hard_start; accesses must fall in
/// [<see cref="PacketStart"/>, <see cref="PacketEnd"/>) (data_meta..data_end), which helpers such as
/// bpf_xdp_adjust_head move. The conformance suite's `-- mem` is this region too.</item>
/// <item>region 2, the context: read-only bytes (xdp_md is not read through this: the verifier will rewrite ctx
/// loads into the packet pointers and queue numbers, as the kernel's convert_ctx_accesses does).</item>
/// <item>regions 8..15, one stack frame each (512 bytes; the frame pointer is the frame's end), so a pointer
/// to a caller's stack passed down a BPF-to-BPF call still names its own frame.</item>
/// <item>region 3, map handles: ld_imm64 of a map (BPF_PSEUDO_MAP_FD) gives <c>Address(MapRegion, id)</c>, the id
/// being the map's index in <see cref="BpfRegionTable.Maps"/>; it is never dereferenced, only passed to helpers.</item>
/// <item>regions 16 and up, <see cref="Extra"/>: map value storage and global data (.data/.rodata/.bss), one
/// region per map, owned by the map, so a map lookup returns a pointer without allocating.</item>
/// </list>
/// </summary>
public ref struct BpfMemory
{
    public const int PacketRegion = 1, CtxRegion = 2, MapRegion = 3, StackRegion0 = 8, ExtraRegion0 = 16;

    public Span<byte> Packet;
    public int PacketStart, PacketEnd;
    /// <summary>How far bpf_xdp_adjust_tail may grow the frame: the buffer end less the reserved tailroom
    /// (the kernel's xdp_data_hard_end: data_hard_start + frame_sz - skb_shared_info).</summary>
    public int PacketHardEnd;
    /// <summary>The context table; writable so the packet-moving helpers can update data/data_end/data_meta in it
    /// (the program itself only reads it).</summary>
    public Span<byte> Ctx;
    /// <summary>All frames' stacks, <see cref="BpfOp.MaxCallFrames"/> × 512 bytes.</summary>
    public Span<byte> Stack;
    public BpfRegionTable? Extra;
    /// <summary>What helpers need beyond memory: the CPU, the clock, the redirect target (null for the conformance suite).</summary>
    public BpfRunContext? Run;

    public BpfMemory(Span<byte> stack, Span<byte> packet, int packetStart, int packetEnd)
    {
        Stack = stack;
        Packet = packet;
        PacketStart = packetStart;
        PacketEnd = packetEnd;
        PacketHardEnd = packet.Length;
    }

    public static ulong Address(int region, int offset) => ((ulong)(uint)region << 32) | (uint)offset;

    /// <summary>The frame pointer (R10) of call frame <paramref name="frame"/>.</summary>
    public static ulong FramePointer(int frame) => Address(StackRegion0 + frame, BpfOp.StackSize);

    /// <summary>The bytes at <paramref name="addr"/>, or false when any of them lies outside the region it names.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool TryMap(ulong addr, int size, bool write, out Span<byte> bytes)
    {
        uint region = (uint)(addr >> 32);
        uint off = (uint)addr;
        ulong end = (ulong)off + (uint)size;
        if (region - StackRegion0 < BpfOp.MaxCallFrames)
        {
            if (end <= BpfOp.StackSize)
            {
                bytes = Stack.Slice((int)(region - StackRegion0) * BpfOp.StackSize + (int)off, size);
                return true;
            }
        }
        else if (region == PacketRegion)
        {
            if (off >= (uint)PacketStart && end <= (ulong)PacketEnd)
            {
                bytes = Packet.Slice((int)off, size);
                return true;
            }
        }
        else if (region >= ExtraRegion0 && Extra is { } extra && region - ExtraRegion0 < (uint)extra.Count)
        {
            var r = extra[(int)(region - ExtraRegion0)];
            if (end <= (ulong)r.Length && (!write || !extra.IsReadOnly((int)(region - ExtraRegion0))))
            {
                bytes = r.AsSpan((int)off, size);
                return true;
            }
        }
        else if (region == CtxRegion && !write)
        {
            if (end <= (ulong)Ctx.Length)
            {
                bytes = Ctx.Slice((int)off, size);
                return true;
            }
        }
        bytes = default;
        return false;
    }
}

/// <summary>
/// The address space shared by the programs and maps of one object (as the kernel's maps are shared by every program
/// that holds their fd): regions beyond the packet, context and stack — map values and global data, each a byte
/// array — and the map handle table.
/// </summary>
public sealed class BpfRegionTable
{
    private readonly List<byte[]> _regions = [];
    private readonly List<bool> _readOnly = [];
    private readonly List<Maps.BpfMap> _maps = [];

    /// <summary>Maps by id (the low half of a map handle).</summary>
    public IReadOnlyList<Maps.BpfMap> Maps => _maps;

    /// <summary>Binds <paramref name="map"/> into this space and returns its handle, the value ld_imm64 loads.</summary>
    public ulong AddMap(Maps.BpfMap map)
    {
        _maps.Add(map);
        map.Bind(this);
        return BpfMemory.Address(BpfMemory.MapRegion, _maps.Count - 1);
    }

    /// <summary>The map a handle names, or null.</summary>
    public Maps.BpfMap? MapAt(ulong handle)
        => (handle >> 32) == BpfMemory.MapRegion && (uint)handle < (uint)_maps.Count ? _maps[(int)(uint)handle] : null;

    public int Count => _regions.Count;
    public byte[] this[int i] => _regions[i];
    public bool IsReadOnly(int i) => _readOnly[i];

    /// <summary>Adds a region and returns its base address.</summary>
    public ulong Add(byte[] storage, bool readOnly = false)
    {
        _regions.Add(storage);
        _readOnly.Add(readOnly);
        return BpfMemory.Address(BpfMemory.ExtraRegion0 + _regions.Count - 1, 0);
    }
}
