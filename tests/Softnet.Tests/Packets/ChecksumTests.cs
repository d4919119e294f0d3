using CsCheck;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Packets;

public class ChecksumTests
{
    private static uint NaiveSum(ReadOnlySpan<byte> d)
    {
        ulong s = 0;
        for (int i = 0; i + 1 < d.Length; i += 2) s += (uint)(d[i] << 8 | d[i + 1]);
        if ((d.Length & 1) != 0) s += (uint)d[^1] << 8;
        while (s > 0xFFFF) s = (s & 0xFFFF) + (s >> 16);
        return (uint)s;
    }

    [Fact]
    public void Rfc1071_example()
    {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        byte[] d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        Assert.Equal(0xddf2u, Checksum.Sum(d));
    }

    [Fact]
    public void Ipv4_header_checksum_known_vector()
    {
        // A real IPv4 header whose stored checksum is 0xb861.
        byte[] h = Convert.FromHexString("450000730000400040110000c0a80001c0a800c7");
        Assert.Equal(0xb861, Checksum.Compute(h));
        h[10] = 0xb8; h[11] = 0x61;
        Assert.True(Checksum.Verify(h));
    }

    [Fact]
    public void Vectorised_sum_equals_naive_sum_for_any_length()
    {
        Gen.Byte.Array[0, 70000].Sample(d => Assert.Equal(NaiveSum(d), Checksum.Sum(d)), iter: 300);
    }

    [Fact]
    public void Short_sum_equals_naive_sum_for_every_length_and_start()
    {
        // Below 64 bytes the sum takes its in-line path: every length, from odd and even starts.
        Gen.Select(Gen.Byte.Array[70], Gen.Int[0, 5], Gen.Int[0, 64]).Sample((d, start, len) =>
        {
            var slice = d.AsSpan(start, len);
            Assert.Equal(NaiveSum(slice.ToArray()), Checksum.Sum(slice));
        }, iter: 2000);
    }

    [Fact]
    public unsafe void SumShort_equals_naive_sum_for_every_length_below_its_limit()
    {
        // GRO's in-line sum of a small datagram: every length below ShortMax, from odd and even starts, and all-ones
        // words (the most each accumulator gains).
        Gen.Select(Gen.Byte.Array[Checksum.ShortMax + 8], Gen.Int[0, 7], Gen.Int[0, Checksum.ShortMax - 1]).Sample((d, start, len) =>
        {
            fixed (byte* p = d) Assert.Equal(NaiveSum(d.AsSpan(start, len).ToArray()), Checksum.SumShort(p + start, len));
        }, iter: 5000);
        var ones = new byte[Checksum.ShortMax];
        Array.Fill(ones, (byte)0xFF);
        for (int len = 0; len < Checksum.ShortMax; len++)
            fixed (byte* p = ones) Assert.Equal(NaiveSum(ones.AsSpan(0, len).ToArray()), Checksum.SumShort(p, len));
    }

    [Fact]
    public unsafe void Ipv4HeaderOk_is_a_network_order_sum_of_0xFFFF()
    {
        // Random headers (nearly all wrong) and the same headers with their checksum field filled in (all right).
        Gen.Byte.Array[20].Sample(h =>
        {
            fixed (byte* p = h) Assert.Equal(NaiveSum(h) == 0xFFFF, Checksum.Ipv4HeaderOk(p));
            h[10] = h[11] = 0;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(10), Checksum.Compute(h));
            fixed (byte* p = h) Assert.True(Checksum.Ipv4HeaderOk(p));
        }, iter: 5000);
    }

    [Fact]
    public void Vectorised_sum_of_all_ones_past_the_accumulator_drain_equals_naive_sum()
    {
        // 0xFFFF in every word is the most a lane gains per step: past 2 MiB the vector accumulators must drain.
        foreach (int length in new[] { (2 << 20) - 32, (2 << 20) + 96 + 1, 5 << 20 })
        {
            var d = new byte[length];
            Array.Fill(d, (byte)0xFF);
            Assert.Equal(NaiveSum(d), Checksum.Sum(d));
        }
    }

    [Fact]
    public void Add16_of_folded_sums_equals_the_general_add()
    {
        foreach (uint a in new uint[] { 0, 1, 0x7FFF, 0xFFFE, 0xFFFF })
            foreach (uint b in new uint[] { 0, 1, 0x8000, 0xFFFE, 0xFFFF })
                Assert.Equal(Checksum.Add(a, b), Checksum.Add16(a, b));
        Gen.Select(Gen.UInt[0, 0xFFFF], Gen.UInt[0, 0xFFFF]).Sample((a, b) => Assert.Equal(Checksum.Add(a, b), Checksum.Add16(a, b)), iter: 10000);
    }

    [Fact]
    public void Incremental_update_matches_recompute()
    {
        Gen.Select(Gen.Byte.Array[20], Gen.Int[0, 9], Gen.UShort).Sample((h, word, nv) =>
        {
            h[10] = h[11] = 0;
            ushort c = Checksum.Compute(h);
            ushort old = (ushort)(h[word * 2] << 8 | h[word * 2 + 1]);
            if (word == 5) return; // the checksum word itself
            h[word * 2] = (byte)(nv >> 8); h[word * 2 + 1] = (byte)nv;
            ushort upd = Checksum.Update16(c, old, nv);
            ushort full = Checksum.Compute(h);
            // 0x0000 and 0xFFFF are the same value in ones' complement.
            Assert.True(upd == full || (upd ^ full) == 0xFFFF && (upd == 0 || full == 0));
        });
    }
}
