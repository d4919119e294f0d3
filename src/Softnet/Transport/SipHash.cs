using System.Buffers.Binary;
using System.Numerics;

namespace Softnet.Transport;

/// <summary>
/// SipHash-2-4 (lib/siphash.c's siphash()): a 64-bit keyed hash of a byte string, the message read as little-endian
/// words and the last one carrying the length in its top byte. The kernel keys TCP Fast Open cookies with it.
/// </summary>
public static class SipHash
{
    /// <summary>siphash(data, len, key) with key = { <paramref name="k0"/>, <paramref name="k1"/> }.</summary>
    public static ulong Hash24(ReadOnlySpan<byte> data, ulong k0, ulong k1)
    {
        ulong v0 = 0x736f6d6570736575UL ^ k0, v1 = 0x646f72616e646f6dUL ^ k1;
        ulong v2 = 0x6c7967656e657261UL ^ k0, v3 = 0x7465646279746573UL ^ k1;
        int whole = data.Length & ~7;
        for (int i = 0; i < whole; i += 8)
        {
            ulong m = BinaryPrimitives.ReadUInt64LittleEndian(data[i..]);
            v3 ^= m;
            Round(ref v0, ref v1, ref v2, ref v3);
            Round(ref v0, ref v1, ref v2, ref v3);
            v0 ^= m;
        }
        ulong last = (ulong)data.Length << 56;
        for (int i = whole; i < data.Length; i++) last |= (ulong)data[i] << (8 * (i - whole));
        v3 ^= last;
        Round(ref v0, ref v1, ref v2, ref v3);
        Round(ref v0, ref v1, ref v2, ref v3);
        v0 ^= last;
        v2 ^= 0xff;
        for (int r = 0; r < 4; r++) Round(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    private static void Round(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3)
    {
        v0 += v1; v1 = BitOperations.RotateLeft(v1, 13); v1 ^= v0; v0 = BitOperations.RotateLeft(v0, 32);
        v2 += v3; v3 = BitOperations.RotateLeft(v3, 16); v3 ^= v2;
        v0 += v3; v3 = BitOperations.RotateLeft(v3, 21); v3 ^= v0;
        v2 += v1; v1 = BitOperations.RotateLeft(v1, 17); v1 ^= v2; v2 = BitOperations.RotateLeft(v2, 32);
    }
}
