using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Nic;

/// <summary>
/// The Toeplitz hash a NIC computes for Receive Side Scaling (Microsoft's RSS specification; Linux drivers
/// program the key with <c>ethtool -X hkey</c> and the kernel mirrors the function in
/// lib/toeplitz / net/core for software hashes).
/// <para>
/// Toeplitz is linear over GF(2): every input byte at position p contributes a 32-bit value that depends only on
/// (p, byte). The constructor precomputes those 256 values per position, so a hash is one table load and XOR per
/// input byte with no allocation. Inputs are big-endian, exactly as they appear on the wire.
/// </para>
/// <para>The frame hashes remember the last IPv4 4-tuples they hashed, so one instance serves one thread at a time (the
/// port's, as the NIC's one hash engine does).</para>
/// </summary>
public sealed class RssHasher
{
    /// <summary>Microsoft's 40-byte verification key, also the default key of ixgbe/i40e/mlx4 style NICs.</summary>
    public static ReadOnlySpan<byte> DefaultKey =>
    [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
        0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
        0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    /// <summary>The standard RSS key length.</summary>
    public const int StandardKeyLength = 40;

    /// <summary>The key length of Intel ice/i40e (ethtool reports 52 bytes there); the extra bytes serve longer inputs.</summary>
    public const int ExtendedKeyLength = 52;

    // Longest real input: IPv6 addresses + ports.
    private const int V6TupleLength = 36;
    private const int MaxExtensionHeaders = 8;

    private readonly byte[] _key;
    // _table[p * 256 + v] = contribution of byte value v at input position p.
    private readonly uint[] _table;

    /// <summary>A hasher with <see cref="DefaultKey"/> and <see cref="RssHashFields.Default"/>.</summary>
    public RssHasher() : this(DefaultKey, RssHashFields.Default) { }

    /// <summary>A hasher with <paramref name="key"/> (40 or 52 bytes) and the given port configuration.</summary>
    /// <exception cref="ArgumentException">the key is not 40 or 52 bytes long.</exception>
    public RssHasher(ReadOnlySpan<byte> key, RssHashFields fields)
    {
        if (key.Length != StandardKeyLength && key.Length != ExtendedKeyLength)
            throw new ArgumentException(
                $"RSS key must be {StandardKeyLength} bytes (standard Toeplitz key) or {ExtendedKeyLength} bytes " +
                $"(Intel ice/i40e extended key); got {key.Length} bytes", nameof(key));
        _key = key.ToArray();
        Fields = fields;
        MaxInputLength = key.Length - 4;
        _table = BuildTable(_key);
    }

    /// <summary>A hasher with <paramref name="key"/> and the default port configuration.</summary>
    public RssHasher(ReadOnlySpan<byte> key) : this(key, RssHashFields.Default) { }

    /// <summary>The key in use.</summary>
    public ReadOnlySpan<byte> Key => _key;

    /// <summary>Which flow types include the L4 ports.</summary>
    public RssHashFields Fields { get; }

    /// <summary>Longest input this key can hash: every input bit needs 32 key bits after it.</summary>
    public int MaxInputLength { get; }

    private static uint[] BuildTable(byte[] key)
    {
        int positions = key.Length - 4;
        var table = new uint[positions * 256];
        Span<uint> bit = stackalloc uint[8];
        for (int p = 0; p < positions; p++)
        {
            // The 40 key bits starting at byte p; the window for input bit b (0 = MSB) starts b bits in.
            ulong w = (ulong)key[p] << 32 | (ulong)key[p + 1] << 24 | (ulong)key[p + 2] << 16
                      | (ulong)key[p + 3] << 8 | key[p + 4];
            for (int b = 0; b < 8; b++)
                bit[b] = (uint)(w >> (8 - b));
            int row = p * 256;
            for (int v = 1; v < 256; v++)
            {
                // v = (v with lowest set bit cleared) + that bit; input bit b of a byte has value 0x80 >> b.
                int low = v & -v;
                table[row + v] = table[row + (v ^ low)] ^ bit[7 - BitOperations.Log2((uint)low)];
            }
        }
        return table;
    }

    /// <summary>The Toeplitz hash of <paramref name="input"/> (ComputeHash in Microsoft's specification).</summary>
    /// <exception cref="ArgumentException">input longer than <see cref="MaxInputLength"/>.</exception>
    internal uint Hash(ReadOnlySpan<byte> input)
    {
        if (input.Length > MaxInputLength)
            throw new ArgumentException($"input of {input.Length} bytes is longer than this {_key.Length}-byte key can hash ({MaxInputLength} bytes)", nameof(input));
        return Mix(0, 0, input);
    }

    /// <summary>IPv4 2-tuple: source then destination address.</summary>
    public uint HashV4(ReadOnlySpan<byte> src4, ReadOnlySpan<byte> dst4)
    {
        CheckLength(src4, 4, nameof(src4));
        CheckLength(dst4, 4, nameof(dst4));
        return Mix4(Mix4(0, 0, src4), 4, dst4);
    }

    /// <summary>IPv4 4-tuple: source, destination, source port, destination port.</summary>
    public uint HashV4(ReadOnlySpan<byte> src4, ReadOnlySpan<byte> dst4, ushort sport, ushort dport)
        => MixPorts(HashV4(src4, dst4), 8, sport, dport);

    /// <summary>IPv6 2-tuple: source then destination address.</summary>
    public uint HashV6(ReadOnlySpan<byte> src16, ReadOnlySpan<byte> dst16)
    {
        CheckLength(src16, 16, nameof(src16));
        CheckLength(dst16, 16, nameof(dst16));
        return Mix(Mix(0, 0, src16), 16, dst16);
    }

    /// <summary>IPv6 4-tuple: source, destination, source port, destination port.</summary>
    public uint HashV6(ReadOnlySpan<byte> src16, ReadOnlySpan<byte> dst16, ushort sport, ushort dport)
        => MixPorts(HashV6(src16, dst16), 32, sport, dport);

    private static void CheckLength(ReadOnlySpan<byte> s, int len, string name)
    {
        if (s.Length != len)
            throw new ArgumentException($"expected a {len}-byte address, got {s.Length} bytes", name);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint Mix(uint h, int pos, ReadOnlySpan<byte> bytes)
    {
        // Callers keep pos + bytes.Length <= MaxInputLength (36 for every typed input, the minimum key allows it).
        ref uint t = ref MemoryMarshal.GetArrayDataReference(_table);
        int row = pos << 8;
        for (int i = 0; i < bytes.Length; i++, row += 256)
            h ^= Unsafe.Add(ref t, row + bytes[i]);
        return h;
    }

    /// <summary><see cref="Mix"/> of exactly four bytes (an IPv4 address, or the two ports after either address):
    /// one read and four independent table loads, where the loop's bounds checks and counter sat on every
    /// frame's RSS hash (the lookups are what the hardware's Toeplitz would do in one pass).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint Mix4(uint h, int pos, ReadOnlySpan<byte> four) => Mix4Word(h, pos, BinaryPrimitives.ReadUInt32LittleEndian(four));

    /// <summary>Four input bytes at <paramref name="pos"/> given as one word read little-endian (wire order, lowest first).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint Mix4Word(uint h, int pos, uint w)
    {
        ref uint t = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_table), pos << 8);
        return h ^ Unsafe.Add(ref t, (int)(w & 0xFF)) ^ Unsafe.Add(ref t, 256 + (int)((w >> 8) & 0xFF))
                 ^ Unsafe.Add(ref t, 512 + (int)((w >> 16) & 0xFF)) ^ Unsafe.Add(ref t, 768 + (int)(w >> 24));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint MixPorts(uint h, int pos, ushort sport, ushort dport)
    {
        ref uint t = ref MemoryMarshal.GetArrayDataReference(_table);
        int row = pos << 8;
        h ^= Unsafe.Add(ref t, row + (sport >> 8));
        h ^= Unsafe.Add(ref t, row + 256 + (sport & 0xff));
        h ^= Unsafe.Add(ref t, row + 512 + (dport >> 8));
        h ^= Unsafe.Add(ref t, row + 768 + (dport & 0xff));
        return h;
    }

    /// <summary>
    /// Parses an Ethernet frame the way a NIC's RSS parser does and hashes it by the configured types:
    /// 802.1Q/802.1ad tags skipped; IPv4 with IHL checks; IPv6 walking hop-by-hop, routing, destination-options
    /// and fragment headers; TCP/UDP ports when <see cref="Fields"/> says so; IP fragments (IPv4 MF or offset,
    /// any IPv6 fragment header) and other protocols hash on the addresses only.
    /// Returns false (hash 0, type None) for non-IP or malformed frames; never throws, never allocates.
    /// </summary>
    public bool TryHashFrame(ReadOnlySpan<byte> ethernetFrame, out uint hash, out RssHashType type)
    {
        hash = 0;
        type = RssHashType.None;
        // The tags ice's parser skips: 802.1Q, 802.1ad and the pre-standard 0x9100 S-tag (double VLAN mode).
        if (!EthernetView.TryParse(ethernetFrame, out var eth, out _)) return false;
        ushort etherType = eth.EtherType;
        int off = EthernetView.HeaderLength;
        if (!VlanStackView.TrySkip(ethernetFrame, ref off, ref etherType, out _)) return false;
        var l3 = ethernetFrame[off..];
        return etherType switch
        {
            EtherTypes.Ipv4 => TryHashIpv4(l3, out hash, out type),
            EtherTypes.Ipv6 => TryHashIpv6(l3, out hash, out type),
            _ => false,
        };
    }

    /// <summary>As <see cref="TryHashFrame"/> for a packet starting at the IPv4 or IPv6 header (raw IP link types).</summary>
    public bool TryHashIp(ReadOnlySpan<byte> ipPacket, out uint hash, out RssHashType type)
    {
        hash = 0;
        type = RssHashType.None;
        if (ipPacket.IsEmpty) return false;
        return (ipPacket[0] >> 4) switch
        {
            4 => TryHashIpv4(ipPacket, out hash, out type),
            6 => TryHashIpv6(ipPacket, out hash, out type),
            _ => false,
        };
    }

    private unsafe bool TryHashIpv4(ReadOnlySpan<byte> ip, out uint hash, out RssHashType type)
    {
        fixed (byte* p = ip) return TryHashIpv4(p, ip.Length, out hash, out type);
    }

    /// <summary>The hash of the IPv4 packet at <paramref name="ip"/>, <paramref name="length"/> bytes to the frame's end,
    /// read by pointer: the same checks as Ipv4View.TryParseHeader plus tot_len >= IHL (through the view, whose accessors
    /// re-check bounds, this per-frame hash cost 1-2 ns more, ~10 % of xdp_drop_64). The port's parser calls it directly
    /// for its common frame, untagged IPv4, whose headers it reads once for RSS and for the checksum offload.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal unsafe bool TryHashIpv4(byte* ip, int length, out uint hash, out RssHashType type)
    {
        if (length < 20 || ip[0] >> 4 != 4) return Malformed(out hash, out type);
        int ihl = (ip[0] & 0x0f) * 4;
        int totalLength = BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(ip + 2, 2));
        if (ihl < 20 || ihl > length || totalLength < ihl) return Malformed(out hash, out type);
        bool fragment = (BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(ip + 6, 2)) & 0x3FFF) != 0;
        byte proto = ip[9];
        bool ports = !fragment && proto switch
        {
            IpProtocols.Tcp => Fields.TcpV4Ports,
            IpProtocols.Udp => Fields.UdpV4Ports,
            _ => false,
        };
        ulong addresses = LittleEndian64(ip + 12);
        // A TCP/UDP header too short to hold the ports falls back to the addresses, as for an unknown protocol; trailing
        // Ethernet padding is not part of the packet.
        if (ports && Math.Min(totalLength, length) - ihl >= 4)
        {
            hash = HashV4Tuple(addresses, LittleEndian32(ip + ihl));
            type = proto == IpProtocols.Tcp ? RssHashType.TcpIpv4 : RssHashType.UdpIpv4;
            return true;
        }
        hash = Mix4Word(Mix4Word(0, 0, (uint)addresses), 4, (uint)(addresses >> 32));
        type = RssHashType.Ipv4;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe ulong LittleEndian64(byte* p)
        => BitConverter.IsLittleEndian ? Unsafe.ReadUnaligned<ulong>(p) : BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe uint LittleEndian32(byte* p)
        => BitConverter.IsLittleEndian ? Unsafe.ReadUnaligned<uint>(p) : BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(p));

    // The last 4-tuples hashed, by a multiplicative hash of the tuple: a capture's frames come in runs of a few flows, and
    // a hit costs one compare where the twelve table loads of the Toeplitz sum cost ~3 ns a frame. An all-zero entry is
    // right as it stands (Toeplitz of zeros is 0), so the table needs no valid bits.
    private struct TupleMemo
    {
        public ulong Addresses;
        public uint Ports;
        public uint Hash;
    }
    private const int TupleMemoSlots = 256;
    private readonly TupleMemo[] _memo = new TupleMemo[TupleMemoSlots];

    /// <summary>The Toeplitz hash of an IPv4 4-tuple given as its wire bytes read little-endian (addresses as one 8-byte
    /// word, the ports as one 4-byte word).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint HashV4Tuple(ulong addresses, uint ports)
    {
        int slot = (int)(((addresses ^ ((ulong)ports << 29)) * 0x9E3779B97F4A7C15UL) >> 56);
        ref TupleMemo m = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_memo), slot);
        if (m.Addresses == addresses && m.Ports == ports) return m.Hash;
        uint h = Mix4Word(Mix4Word(Mix4Word(0, 0, (uint)addresses), 4, (uint)(addresses >> 32)), 8, ports);
        m.Addresses = addresses;
        m.Ports = ports;
        m.Hash = h;
        return h;
    }

    private bool TryHashIpv6(ReadOnlySpan<byte> packet, out uint hash, out RssHashType type)
    {
        hash = 0;
        type = RssHashType.None;
        // Payload length 0 is a jumbogram (RFC 2675); otherwise it bounds the packet.
        if (!Ipv6View.TryParseHeader(packet, out var ip)) return false;

        hash = Mix(Mix(0, 0, ip.Source), 16, ip.Destination);
        type = RssHashType.Ipv6;

        // Hop-by-hop, routing and destination options are walked; a fragment header (the L4 header may be
        // elsewhere), AH, or a chain too long for the parser leave the addresses only.
        var payload = ip.Payload;
        var ext = new Ipv6ExtensionHeaderReader(payload, ip.NextHeader);
        while (ext.Count < MaxExtensionHeaders && ext.NextHeader != IpProtocols.Ah && ext.MoveNext())
        {
            if (ext.Type == IpProtocols.Fragment) return true;
        }
        if (ext.Error != DropReason.None) return Malformed(out hash, out type);
        byte next = ext.NextHeader;
        if (next is not (IpProtocols.Tcp or IpProtocols.Udp)) return true;
        bool ports = next == IpProtocols.Tcp ? Fields.TcpV6Ports : Fields.UdpV6Ports;
        int off = ext.NextOffset;
        if (ports && payload.Length - off >= 4)
        {
            hash = Mix4(hash, 32, payload.Slice(off, 4));
            type = next == IpProtocols.Tcp ? RssHashType.TcpIpv6 : RssHashType.UdpIpv6;
        }
        return true;
    }

    private static bool Malformed(out uint hash, out RssHashType type)
    {
        hash = 0;
        type = RssHashType.None;
        return false;
    }
}
