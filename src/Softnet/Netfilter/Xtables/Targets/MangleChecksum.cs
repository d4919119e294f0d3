using System.Buffers.Binary;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// The incremental checksum updates the mangling targets use, bit for bit as include/net/checksum.h and
/// net/core/utils.c compute them (the ones'-complement sums are taken on big-endian 16-bit words, which gives
/// the same stored bytes as the kernel's native-order arithmetic). Values are header words as read big-endian.
/// </summary>
internal static class MangleChecksum
{
    /// <summary>Ones'-complement 16-bit addition with end-around carry (csum16_add).</summary>
    private static ushort Add16(ushort a, ushort b)
    {
        uint r = (uint)a + b;
        return (ushort)(r + (r >> 16));
    }

    /// <summary>csum_replace2: the IP header checksum after one 16-bit word changed from <paramref name="from"/> to <paramref name="to"/>.</summary>
    public static ushort Replace2(ushort check, ushort from, ushort to)
        => (ushort)~Add16(Add16((ushort)~check, (ushort)~from), to);

    /// <summary>Folds a sum of 16-bit words to 16 bits with end-around carry (the non-complemented csum_fold).</summary>
    private static ushort Fold(ulong s)
    {
        while ((s >> 16) != 0) s = (s & 0xFFFF) + (s >> 16);
        return (ushort)s;
    }

    /// <summary>
    /// inet_proto_csum_replace4 on a transport checksum: the 32-bit field (two words) <paramref name="fromHi"/>:
    /// <paramref name="fromLo"/> became <paramref name="toHi"/>:<paramref name="toLo"/>. A CHECKSUM_PARTIAL packet
    /// only carries the pseudo-header sum in the field, so only pseudo-header changes touch it there.
    /// </summary>
    public static ushort ProtoReplace4(ushort check, CsumState summed, ushort fromHi, ushort fromLo, ushort toHi, ushort toLo, bool pseudoHeader)
    {
        // diff[] = { ~from, to } summed with the seed; a u32 holding a u16 value contributes its zero half as a word.
        ulong diff = (ulong)(ushort)~fromHi + (ushort)~fromLo + toHi + toLo;
        if (summed != CsumState.Partial)
            return (ushort)~Fold(diff + (ushort)~check + 0xFFFFu);
        if (pseudoHeader)
            return Fold(diff + check);
        return check;
    }

    /// <summary>inet_proto_csum_replace2: a 16-bit transport header word changed (the u16 sits in a zero-extended u32).</summary>
    public static ushort ProtoReplace2(ushort check, CsumState summed, ushort from, ushort to, bool pseudoHeader)
        => ProtoReplace4(check, summed, from, 0, to, 0, pseudoHeader);

    /// <summary>
    /// ipv4_change_dsfield (include/net/dsfield.h): tos = (tos &amp; mask) | value, with its own incremental update of
    /// the header checksum at <paramref name="ip"/>[10..12].
    /// </summary>
    public static void ChangeDsfield(Span<byte> ip, byte mask, byte value)
    {
        uint check = BinaryPrimitives.ReadUInt16BigEndian(ip[10..]);
        byte tos = ip[1];
        byte ds = (byte)((tos & mask) | value);
        check += tos;
        if (((check + 1) >> 16) != 0) check = (check + 1) & 0xFFFF;
        check -= ds;
        check += check >> 16;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)check);
        ip[1] = ds;
    }
}
