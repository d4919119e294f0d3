using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Gro;

/// <summary>
/// The link-layer part of GRO: eth_type_trans (net/ethernet/eth.c), which the driver runs before
/// napi_gro_receive, and gro_list_prepare's flow match (net/core/gro.c): same raw hash, device, VLAN tag and
/// an identical 14-byte Ethernet header. eth_gro_receive / eth_gro_complete serve the Ethernet frame inside a
/// tunnel (VXLAN's inner frame, <see cref="VxlanGro"/>).
/// </summary>
public static class EthGro
{
    public const int EthHlen = 14;

    /// <summary>eth_type_trans: note the MAC header, pull it, set skb->protocol and pkt_type. False if the skb is
    /// shorter than an Ethernet header.</summary>
    public static unsafe bool TypeTrans(Skb skb)
    {
        if (!GroEngine.MayPull(skb, EthHlen)) return false;
        byte* eth = skb.DataAddress;
        skb.ResetMacHeader();
        if ((eth[0] & 1) != 0)
        {
            bool broadcast = Unsafe.ReadUnaligned<uint>(eth) == 0xFFFFFFFF && Unsafe.ReadUnaligned<ushort>(eth + 4) == 0xFFFF;
            skb.PktType = broadcast ? PacketType.Broadcast : PacketType.Multicast;
        }
        ushort proto = GroEngine.Be16(eth + 12);
        // Below 0x600 the field is an 802.3 length: ETH_P_802_3 (raw IPX) or ETH_P_802_2 (LLC).
        if (proto < 0x600)
            proto = skb.HeadLen >= 16 && eth[14] == 0xFF && eth[15] == 0xFF ? (ushort)0x0001 : (ushort)0x0004;
        skb.Protocol = proto;
        skb.Pull(EthHlen);
        return true;
    }

    /// <summary>gro_list_prepare: mark which held skbs may belong to the same flow as <paramref name="skb"/>.</summary>
    internal static unsafe void ListPrepare(GroBucket bucket, Skb skb, uint key)
    {
        if ((uint)skb.MacHeader > (uint)(skb.HeadBuffer.Length - EthHlen)) ThrowNoMacHeader();
        byte* mac = skb.HeadAddress + skb.MacHeader;
        // compare_ether_header: destination, source and EtherType as two overlapping 8-byte words.
        ulong mac0 = GroEngine.Raw64(mac), mac1 = GroEngine.Raw64(mac + 6);
        bool tagged = skb.VlanProto != 0;
        for (Skb? p = bucket.Head; p != null; p = p.Next)
        {
            if (p.Gro.FlowKey != key)
            {
                p.Gro.SameFlow = false;
                continue;
            }
            byte* mac2 = p.HeadAddress + p.MacHeader;
            bool diffs = p.Ifindex != skb.Ifindex
                || (p.VlanProto != 0) != tagged
                || (tagged && p.VlanTci != skb.VlanTci)
                || ((GroEngine.Raw64(mac2) ^ mac0) | (GroEngine.Raw64(mac2 + 6) ^ mac1)) != 0;
            p.Gro.SameFlow = !diffs;
        }
    }

    /// <summary>eth_gro_receive: an inner Ethernet header, which must be identical in held packets of the same flow;
    /// then the handler of its EtherType.</summary>
    internal static unsafe Skb? Receive(GroEngine e, GroBucket bucket, Skb skb)
    {
        int off = skb.Gro.DataOffset;
        if (!GroEngine.MayPull(skb, off + EthHlen))
        {
            e.NoteNormal(GroNormalReason.Truncated);
            skb.Gro.Flush |= 1;
            return null;
        }
        byte* eh = skb.DataAddress + off;
        // compare_ether_header as two overlapping 8-byte words.
        ulong w0 = GroEngine.Raw64(eh), w1 = GroEngine.Raw64(eh + 6);
        for (Skb? p = bucket.Head; p != null; p = p.Next)
        {
            if (!p.Gro.SameFlow) continue;
            byte* eh2 = p.DataAddress + off;
            if (((GroEngine.Raw64(eh2) ^ w0) | (GroEngine.Raw64(eh2 + 6) ^ w1)) != 0) p.Gro.SameFlow = false;
        }
        ushort type = GroEngine.Be16(eh + 12);
        skb.Gro.DataOffset += EthHlen;
        GroEngine.PostPullRcsum(skb, new ReadOnlySpan<byte>(eh, EthHlen));
        // gro_find_receive_by_type: no handler for the EtherType flushes (DispatchL3 notes it).
        return e.DispatchL3(type, bucket, skb);
    }

    /// <summary>eth_gro_complete: the inner MAC header is recorded on an encapsulated skb, then the EtherType's
    /// completion runs.</summary>
    internal static bool Complete(Skb skb, int nhoff)
    {
        if (skb.Encapsulation) skb.InnerMacHeader = skb.Data + nhoff;
        ushort type = GroEngine.Be16(skb.LinearData, nhoff + 12);
        return GroEngine.DispatchComplete(type, skb, nhoff + EthHlen);
    }

    private static void ThrowNoMacHeader() => throw new InvalidOperationException("GRO needs the MAC header (skb_mac_header) inside the head");
}

/// <summary>
/// vlan_gro_receive / vlan_gro_complete (net/8021q/vlan_core.c): an 802.1Q/802.1ad header left in the packet
/// (no hardware tag stripping). Held skbs whose VLAN ID or inner EtherType differ are another flow.
/// </summary>
public static class VlanGro
{
    internal static Skb? Receive(GroEngine e, GroBucket bucket, Skb skb)
    {
        int off = skb.Gro.DataOffset;
        Skb? pp = null;
        int flush = 1;
        if (!GroEngine.MayPull(skb, off + 4))
        {
            e.NoteNormal(GroNormalReason.Truncated);
            goto Out;
        }
        ReadOnlySpan<byte> vh = skb.LinearData.Slice(off, 4);
        ushort type = GroEngine.Be16(vh, 2);
        if (type != EtherTypes.Ipv4 && type != EtherTypes.Ipv6 && type != EtherTypes.Vlan && type != EtherTypes.QinQ)
        {
            e.NoteNormal(GroNormalReason.NoHandler);
            goto Out;
        }
        flush = 0;
        ushort tci = GroEngine.Be16(vh, 0);
        for (Skb? p = bucket.Head; p != null; p = p.Next)
        {
            if (!p.Gro.SameFlow) continue;
            ReadOnlySpan<byte> vh2 = p.LinearData.Slice(off, 4);
            if (((tci ^ GroEngine.Be16(vh2, 0)) & 0x0FFF) != 0 || type != GroEngine.Be16(vh2, 2))
                p.Gro.SameFlow = false;
        }
        skb.Gro.DataOffset += 4;
        GroEngine.PostPullRcsum(skb, vh);
        pp = e.DispatchL3(type, bucket, skb);
    Out:
        skb.Gro.Flush |= (ushort)flush;
        return pp;
    }

    internal static bool Complete(Skb skb, int nhoff)
    {
        ushort type = GroEngine.Be16(skb.LinearData, nhoff + 2);
        return GroEngine.DispatchComplete(type, skb, nhoff + 4);
    }
}

/// <summary>The Hash variant's software flow key: a 5-tuple hash computed from the headers (no RSS needed).</summary>
internal static class FlowHash
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe uint Compute(Skb skb)
    {
        // An option-less IPv4 header, read through the head's address (no span slicing or bounds checks): the same
        // hash as Compute(span, type). GRO's per-flow statistics hash every skb it passes up.
        int headLen = skb.HeadLen;
        if (skb.Protocol == EtherTypes.Ipv4 && headLen >= 20)
        {
            byte* d = skb.DataAddress;
            if (d[0] == 0x45) return HashIpv4(d, headLen);
        }
        return ComputeSlow(skb);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static uint ComputeSlow(Skb skb) => Compute(skb.LinearData, skb.Protocol);

    /// <summary>The option-less IPv4 case of <see cref="Compute(ReadOnlySpan{byte}, ushort)"/> over
    /// <paramref name="length"/> (at least 20) bytes at <paramref name="d"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe uint HashIpv4(byte* d, int length)
    {
        int total = GroEngine.Be16(d + 2);
        int l4Length = (total < 20 ? 20 : Math.Min(total, length)) - 20;
        byte p4 = d[9];
        ulong h4 = Mix(0xcbf29ce484222325UL ^ EtherTypes.Ipv4, BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(d + 12, 8)));
        h4 = Mix(h4, p4);
        if ((p4 == IpProtocols.Tcp || p4 == IpProtocols.Udp) && l4Length >= 4)
            h4 = Mix(h4, BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(d + 20, 4)));
        return Fold(h4);
    }

    /// <summary>The same for a whole frame (data at the Ethernet header).</summary>
    public static uint ComputeFrame(ReadOnlySpan<byte> frame)
        => frame.Length < 14 ? 0 : Compute(frame[14..], BinaryPrimitives.ReadUInt16BigEndian(frame[12..]));

    /// <summary>Over the headers in <paramref name="d"/> (data at the network header, or at the VLAN tags of
    /// <paramref name="type"/>).</summary>
    public static uint Compute(ReadOnlySpan<byte> d, ushort type)
    {
        // An IPv4 header without options, read in place: the same hash as the general path below, without the views'
        // slicing (GRO's per-flow statistics hash every skb it passes up).
        if (type == EtherTypes.Ipv4 && d.Length >= 20 && d[0] == 0x45)
        {
            unsafe
            {
                fixed (byte* p = d) return HashIpv4(p, d.Length);
            }
        }
        int off = 0;
        if (EtherTypes.IsVlanTpid(type))
        {
            // Up to two tags (vlan_gro_receive nests once more); a deeper stack gets no software hash.
            if (!VlanStackView.TryParse(d, 0, type, out var tags, out _) || tags.Count > 2) return 0;
            type = tags.InnerEtherType;
            off = tags.PayloadOffset;
        }
        ulong h = 0xcbf29ce484222325UL ^ type;
        ReadOnlySpan<byte> l4;
        byte proto;
        if (type == EtherTypes.Ipv4)
        {
            if (!Ipv4View.TryParseHeader(d[off..], out var ip)) return 0;
            proto = ip.Protocol;
            h = Mix(h, BinaryPrimitives.ReadUInt64LittleEndian(ip.Header[12..])); // saddr, daddr
            l4 = ip.Payload;
        }
        else if (type == EtherTypes.Ipv6)
        {
            if (!Ipv6View.TryParseHeader(d[off..], out var ip)) return 0;
            proto = ip.NextHeader;
            var src = ip.Source;
            var dst = ip.Destination;
            h = Mix(h, BinaryPrimitives.ReadUInt64LittleEndian(src));
            h = Mix(h, BinaryPrimitives.ReadUInt64LittleEndian(src[8..]));
            h = Mix(h, BinaryPrimitives.ReadUInt64LittleEndian(dst));
            h = Mix(h, BinaryPrimitives.ReadUInt64LittleEndian(dst[8..]));
            l4 = ip.Payload;
        }
        else return 0;
        h = Mix(h, proto);
        // The source and destination ports, the first four bytes of either L4 header.
        if ((proto == IpProtocols.Tcp || proto == IpProtocols.Udp) && l4.Length >= 4)
            h = Mix(h, BinaryPrimitives.ReadUInt32LittleEndian(l4));
        return Fold(h);
    }

    private static uint Fold(ulong h)
    {
        uint r = (uint)(h ^ (h >> 32));
        return r == 0 ? 1u : r;
    }

    private static ulong Mix(ulong h, ulong v)
    {
        h ^= v;
        h *= 0x9E3779B97F4A7C15UL;
        return h ^ (h >> 29);
    }
}
