using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Softnet.Packets;

/// <summary>
/// RFC 1071 ones'-complement checksums (the kernel's csum_partial / csum_fold / csum_tcpudp_magic).
/// All sums here are expressed as if the data were read as big-endian 16-bit words, so a result can be
/// compared with, or written into, a header field directly with BinaryPrimitives.WriteUInt16BigEndian.
/// Internally the bytes are summed in native order (the ones'-complement sum is byte-order independent up
/// to a final swap) with 256-bit vectors where the CPU has them.
/// </summary>
public static class Checksum
{
    /// <summary>Ones'-complement sum of <paramref name="data"/>, folded to 16 bits (not complemented).
    /// Only the last chunk of a multi-part sum may have odd length.</summary>
    public static uint Sum(ReadOnlySpan<byte> data) => FoldNative(SumNative(data));

    /// <summary>A native-order word sum folded to 16 bits in network order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint FoldNative(ulong acc)
    {
        ushort folded = (ushort)Fold64(acc);
        // The native sum of little-endian words is the byte-swapped big-endian sum.
        return BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(folded) : folded;
    }

    /// <summary><see cref="Sum"/> of fewer than <see cref="ShortMax"/> bytes at <paramref name="p"/>, inlined where it is
    /// called: the checksum GRO verifies on every small datagram, where the general sum's call and its vector-length
    /// tests cost more than the few words themselves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe uint SumShort(byte* p, int length)
    {
        Debug.Assert(length >= 0 && length < ShortMax);
        return FoldNative(SumScalar(ref *p, 0, (nuint)length));
    }

    /// <summary>The unfolded sum of <paramref name="length"/> bytes at <paramref name="p"/> as native-order 16-bit words.
    /// For checks only: folded, it is 0xFFFF exactly when the network-order sum is (0xFFFF reads the same both ways), so
    /// a verifier adds the other words in native order and folds once, with no byte swaps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe ulong SumNativeUnfolded(byte* p, int length)
        => length < ShortMax ? SumScalar(ref *p, 0, (nuint)length) : SumNative(new ReadOnlySpan<byte>(p, length));

    /// <summary>ip_fast_csum == 0 for a 20-byte IPv4 header at <paramref name="iph"/>: its five 32-bit words, read in native
    /// order (see <see cref="SumNativeUnfolded"/>), fold to 0xFFFF. GRO's inet_gro_receive and the NIC's offload check.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe bool Ipv4HeaderOk(byte* iph)
        => Fold64((ulong)Unsafe.ReadUnaligned<uint>(iph) + Unsafe.ReadUnaligned<uint>(iph + 4) + Unsafe.ReadUnaligned<uint>(iph + 8)
                  + Unsafe.ReadUnaligned<uint>(iph + 12) + Unsafe.ReadUnaligned<uint>(iph + 16)) == 0xFFFF;

    /// <summary>Inputs shorter than this may take <see cref="SumShort"/>.</summary>
    public const int ShortMax = 64;

    /// <summary>Adds two 16-bit-foldable partial sums with end-around carry.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Add(uint a, uint b) => Fold64((ulong)a + b);

    /// <summary><see cref="Add"/> of two sums already folded to 16 bits: their total fits 17 bits, so one end-around
    /// carry folds it (the per-packet checksum checks, where the general fold's four steps stood in a dependency chain).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Add16(uint a, uint b)
    {
        Debug.Assert(a <= 0xFFFF && b <= 0xFFFF);
        uint s = a + b;
        return (s & 0xFFFF) + (s >> 16);
    }

    /// <summary>Folds a wide sum to 16 bits with end-around carry (csum_fold without the complement).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Fold64(ulong sum)
    {
        sum = (sum & 0xFFFFFFFF) + (sum >> 32);
        sum = (sum & 0xFFFFFFFF) + (sum >> 32);
        uint s = (uint)sum;
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return s;
    }

    /// <summary>The value to store in a checksum field: ~(initial + sum(data)).</summary>
    public static ushort Compute(ReadOnlySpan<byte> data, uint initial = 0)
        => (ushort)~Add(initial, Sum(data));

    /// <summary>True when data (checksum field included) plus the initial sum verifies to 0xFFFF.</summary>
    public static bool Verify(ReadOnlySpan<byte> data, uint initial = 0)
        => Add(initial, Sum(data)) == 0xFFFF;

    /// <summary>IPv4 pseudo-header sum for TCP/UDP (saddr, daddr, zero, protocol, L4 length).</summary>
    public static uint PseudoHeaderV4(ReadOnlySpan<byte> src, ReadOnlySpan<byte> dst, byte protocol, int l4Length)
    {
        ulong s = (ulong)BinaryPrimitives.ReadUInt16BigEndian(src) + BinaryPrimitives.ReadUInt16BigEndian(src[2..])
                + BinaryPrimitives.ReadUInt16BigEndian(dst) + BinaryPrimitives.ReadUInt16BigEndian(dst[2..])
                + protocol + (uint)l4Length;
        return Fold64(s);
    }

    /// <summary>IPv6 pseudo-header sum (RFC 8200 section 8.1): addresses, upper-layer length, next header.</summary>
    public static uint PseudoHeaderV6(ReadOnlySpan<byte> src, ReadOnlySpan<byte> dst, byte nextHeader, int l4Length)
    {
        ulong s = (ulong)(uint)l4Length + nextHeader;
        for (int i = 0; i < 16; i += 2)
            s += (ulong)BinaryPrimitives.ReadUInt16BigEndian(src[i..]) + BinaryPrimitives.ReadUInt16BigEndian(dst[i..]);
        return Fold64(s);
    }

    /// <summary>Incremental update of a stored checksum when one 16-bit word changes (RFC 1624 eqn. 3).</summary>
    public static ushort Update16(ushort check, ushort oldWord, ushort newWord)
        => (ushort)~Add(Add((ushort)~check, (ushort)~oldWord), newWord);

    /// <summary>Ones'-complement sum of native-order 16-bit words, unfolded.</summary>
    private static ulong SumNative(ReadOnlySpan<byte> data)
    {
        ulong acc = 0;
        ref byte start = ref MemoryMarshal.GetReference(data);
        nuint len = (nuint)data.Length;
        nuint i = 0;

        if (Vector256.IsHardwareAccelerated && len >= 64)
        {
            // Each 32-bit lane holds two native 16-bit words: the low word masked and the high one shifted into u32
            // accumulators (an AND and a shift, where widening took a cross-lane shuffle per half), 64 bytes a
            // step over four accumulators so the adds do not wait on each other. 2^15 steps of at most 0xFFFF per
            // lane cannot overflow; longer inputs drain into the 64-bit sum every so often. The words summed are
            // the same, so the (unfolded) sum is the same number.
            var mask = Vector256.Create(0xFFFFu);
            var acc0 = Vector256<uint>.Zero;
            var acc1 = Vector256<uint>.Zero;
            var acc2 = Vector256<uint>.Zero;
            var acc3 = Vector256<uint>.Zero;
            int blocks = 0;
            for (; i + 64 <= len; i += 64)
            {
                var v0 = Vector256.LoadUnsafe(ref start, i).AsUInt32();
                var v1 = Vector256.LoadUnsafe(ref start, i + 32).AsUInt32();
                acc0 += v0 & mask;
                acc1 += v0 >>> 16;
                acc2 += v1 & mask;
                acc3 += v1 >>> 16;
                if (++blocks == 32768)
                {
                    acc += Drain(acc0, acc1) + Drain(acc2, acc3);
                    acc0 = acc1 = acc2 = acc3 = Vector256<uint>.Zero;
                    blocks = 0;
                }
            }
            if (i + 32 <= len)
            {
                var v0 = Vector256.LoadUnsafe(ref start, i).AsUInt32();
                acc0 += v0 & mask;
                acc1 += v0 >>> 16;
                i += 32;
            }
            acc += Drain(acc0, acc1) + Drain(acc2, acc3);
        }
        else if (Vector128.IsHardwareAccelerated && len >= 32)
        {
            var acc0 = Vector128<uint>.Zero;
            var acc1 = Vector128<uint>.Zero;
            int blocks = 0;
            for (; i + 16 <= len; i += 16)
            {
                var v = Vector128.LoadUnsafe(ref start, i).AsUInt16();
                var (lo, hi) = Vector128.Widen(v);
                acc0 += lo;
                acc1 += hi;
                if (++blocks == 4096)
                {
                    acc += Vector128.Sum(Vector128.WidenLower(acc0) + Vector128.WidenUpper(acc0))
                         + Vector128.Sum(Vector128.WidenLower(acc1) + Vector128.WidenUpper(acc1));
                    acc0 = acc1 = Vector128<uint>.Zero;
                    blocks = 0;
                }
            }
            acc += Vector128.Sum(Vector128.WidenLower(acc0) + Vector128.WidenUpper(acc0))
                 + Vector128.Sum(Vector128.WidenLower(acc1) + Vector128.WidenUpper(acc1));
        }

        return acc + SumScalar(ref start, i, len);
    }

    /// <summary>Native-order 16-bit words of bytes [<paramref name="i"/>, <paramref name="len"/>) from
    /// <paramref name="start"/>, unfolded: eight bytes a step (two accumulators keep the adds of a word's halves apart),
    /// then a 4-, a 2- and a 1-byte rest. What the vector loops leave, or a whole short input.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SumScalar(ref byte start, nuint i, nuint len)
    {
        ulong lo = 0, hi = 0;
        for (; i + 8 <= len; i += 8)
        {
            ulong w = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, i));
            lo += (uint)w;
            hi += w >> 32;
        }
        if (i + 4 <= len)
        {
            lo += Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref start, i));
            i += 4;
        }
        if (i + 2 <= len)
        {
            hi += Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref start, i));
            i += 2;
        }
        if (i < len)
        {
            // A trailing odd byte is padded with a zero byte on the right in network order.
            byte b = Unsafe.Add(ref start, i);
            lo += BitConverter.IsLittleEndian ? b : (ulong)b << 8;
        }
        return lo + hi;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Drain(Vector256<uint> a, Vector256<uint> b)
        => Vector256.Sum(Vector256.WidenLower(a) + Vector256.WidenUpper(a))
         + Vector256.Sum(Vector256.WidenLower(b) + Vector256.WidenUpper(b));
}
