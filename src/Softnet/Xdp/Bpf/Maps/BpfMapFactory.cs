using System.Buffers.Binary;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// Creates a map from its spec (map_create's ops lookup). Placeholder on the loader's branch: only arrays, so the
/// loader can be tested; the maps branch replaces this file with every map type.
/// </summary>
public static class BpfMapFactory
{
    public static BpfMap Create(BpfMapSpec spec, int possibleCpus)
    {
        _ = possibleCpus;
        if (spec.Type != BpfMapType.Array) throw new NotSupportedException($"map type {spec.Type} is not supported");
        if (spec.KeySize != 4 || spec.ValueSize <= 0 || spec.MaxEntries <= 0) throw new ArgumentException("invalid array map attributes");
        return new FallbackArrayMap(spec);
    }

    /// <summary>BPF_MAP_TYPE_ARRAY: values in one region, each rounded up to 8 bytes (array_map_alloc).</summary>
    private sealed class FallbackArrayMap(BpfMapSpec spec) : BpfMap(spec)
    {
        private readonly int _stride = (spec.ValueSize + 7) & ~7;
        private byte[] _values = [];
        private ulong _base;

        public override void Bind(BpfRegionTable space)
        {
            _values = new byte[_stride * MaxEntries];
            _base = space.Add(_values, Spec.ReadOnlyForProgram);
        }

        private bool Index(ReadOnlySpan<byte> key, out int i)
        {
            i = key.Length >= 4 ? (int)BinaryPrimitives.ReadUInt32LittleEndian(key) : -1;
            return (uint)i < (uint)MaxEntries;
        }

        public override ulong Lookup(ReadOnlySpan<byte> key, int cpu) => Index(key, out int i) ? _base + (ulong)(i * _stride) : 0;

        public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu)
        {
            if (flags > 2) return -22;
            if (!Index(key, out int i)) return -7;
            if (flags == 1) return -17; // BPF_NOEXIST: every element of an array exists
            value[..ValueSize].CopyTo(_values.AsSpan(i * _stride));
            return 0;
        }

        public override long Delete(ReadOnlySpan<byte> key) => -22;

        public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value)
        {
            if (!Index(key, out int i)) return false;
            _values.AsSpan(i * _stride, ValueSize).CopyTo(value);
            return true;
        }

        public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags) => Update(key, value, flags, 0);

        public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next)
        {
            uint n = Index(key, out int i) ? (uint)i + 1 : 0;
            if (n >= (uint)MaxEntries) return false;
            BinaryPrimitives.WriteUInt32LittleEndian(next, n);
            return true;
        }
    }
}
