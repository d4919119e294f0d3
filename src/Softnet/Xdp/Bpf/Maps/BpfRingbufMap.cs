using System.Buffers.Binary;
using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_RINGBUF (kernel/bpf/ringbuf.c): a power-of-two, page-multiple byte ring that programs append records
/// to with bpf_ringbuf_output and user space consumes. Each record takes an 8-byte header (length, page offset) plus its
/// data rounded up to 8 bytes, as the kernel's; when the unconsumed bytes plus the record would pass the ring size the
/// output fails with -EAGAIN, as bpf_ringbuf_reserve does. User space drains records with <see cref="Drain"/> or
/// <see cref="DrainTo"/>; the syscall's lookup, update and delete are -EINVAL (as the kernel answers).
/// </summary>
public sealed class BpfRingbufMap : BpfMap
{
    public const int HeaderSize = 8;
    private readonly byte[] _ring;
    private readonly int _mask;
    private long _producer, _consumer;

    public BpfRingbufMap(BpfMapSpec spec) : base(spec)
    {
        _ring = new byte[spec.MaxEntries];
        _mask = spec.MaxEntries - 1;
    }

    /// <summary>Records refused for lack of room.</summary>
    public long Dropped { get; private set; }

    /// <summary>Bytes produced and not yet consumed (headers and padding included).</summary>
    public long Pending => _producer - _consumer;

    public override void Bind(BpfRegionTable space) { }

    /// <summary>bpf_ringbuf_output: 0, -EINVAL for unknown flags (only BPF_RB_NO_WAKEUP / BPF_RB_FORCE_WAKEUP), -EAGAIN when full.</summary>
    public long Output(ReadOnlySpan<byte> data, ulong flags)
    {
        if ((flags & ~3ul) != 0) return -EINVAL;
        long len = (data.Length + HeaderSize + 7L) & ~7L;
        // __bpf_ringbuf_reserve: the producer may run at most ring size - 1 bytes ahead of the consumer (new_prod_pos -
        // cons_pos > rb->mask fails), so the ring never fills to the last byte.
        if (len > _ring.Length || _producer - _consumer + len > _ring.Length - 1)
        {
            Dropped++;
            return -EAGAIN;
        }
        Span<byte> hdr = stackalloc byte[HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(hdr, (uint)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(hdr[4..], 0);
        Write(_producer, hdr);
        Write(_producer + HeaderSize, data);
        _producer += len;
        return 0;
    }

    private void Write(long pos, ReadOnlySpan<byte> src)
    {
        int off = (int)(pos & _mask);
        int first = Math.Min(src.Length, _ring.Length - off);
        src[..first].CopyTo(_ring.AsSpan(off));
        src[first..].CopyTo(_ring);
    }

    private void Read(long pos, Span<byte> dst)
    {
        int off = (int)(pos & _mask);
        int first = Math.Min(dst.Length, _ring.Length - off);
        _ring.AsSpan(off, first).CopyTo(dst);
        _ring.AsSpan(0, dst.Length - first).CopyTo(dst[first..]);
    }

    /// <summary>Consumes every record, oldest first, handing each one's data to <paramref name="onRecord"/>; returns the count.</summary>
    public int Drain(Action<ReadOnlySpan<byte>> onRecord)
    {
        int n = 0;
        Span<byte> hdr = stackalloc byte[HeaderSize];
        while (_consumer < _producer)
        {
            Read(_consumer, hdr);
            int size = (int)BinaryPrimitives.ReadUInt32LittleEndian(hdr);
            var data = new byte[size];
            Read(_consumer + HeaderSize, data);
            _consumer += (size + HeaderSize + 7) & ~7;
            onRecord(data);
            n++;
        }
        return n;
    }

    /// <summary>Consumes every record into <paramref name="output"/> as a u32 little-endian length and the data; returns the count.</summary>
    public int DrainTo(Stream output)
    {
        return Drain(rec =>
        {
            Span<byte> l = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(l, (uint)rec.Length);
            output.Write(l);
            output.Write(rec);
        });
    }

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu) => 0;
    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu) => -ENOTSUPP;
    public override long Delete(ReadOnlySpan<byte> key) => -ENOTSUPP;
    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value) => false;
    /// <summary>The syscall refuses a lookup in a ring buffer with -EINVAL before the map is asked.</summary>
    public override long UserLookupElem(ReadOnlySpan<byte> key, Span<byte> value) => -EINVAL;
    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags) => -EINVAL;
    public override long UserDelete(ReadOnlySpan<byte> key) => -EINVAL;
    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => false;

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.Ringbuf];

        /// <summary>ringbuf_map_alloc's checks: no key or value, a power-of-two multiple of the 4 KiB page.</summary>
        public override int Check(BpfMapSpec spec, int possibleCpus)
        {
            if ((spec.Flags & ~BpfMapFlags.NumaNode) != 0) return -EINVAL;
            uint m = (uint)spec.MaxEntries;
            if (spec.KeySize != 0 || spec.ValueSize != 0 || m == 0 || (m & (m - 1)) != 0 || (m & 4095) != 0) return -EINVAL;
            return 0;
        }

        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfRingbufMap(spec);
    }
}
