using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Softnet.Packets;

namespace Softnet.Gro;

/// <summary>
/// A UDP tunnel's GRO callbacks: what setup_udp_tunnel_sock puts on the tunnel's socket from udp_tunnel_sock_cfg
/// (gro_receive, gro_complete). Registered per port on a GRO engine with <see cref="GroEngine.AddUdpTunnel"/>.
/// </summary>
public abstract class UdpTunnelGro
{
    /// <summary>The tunnel kind, for reports.</summary>
    public abstract string Name { get; }

    /// <summary>gro_receive: the skb's GRO offset is just past the outer UDP header.</summary>
    internal abstract Skb? Receive(GroEngine e, GroBucket bucket, Skb skb);

    /// <summary>gro_complete: <paramref name="nhoff"/> is the tunnel header's offset from skb->data.</summary>
    internal abstract bool Complete(Skb skb, int nhoff);
}

/// <summary>
/// udp4_gro_receive / udp6_gro_receive and udp_gro_receive (net/ipv4/udp_offload.c, net/ipv6/udp_offload.c), and
/// their completions. The checksum is verified (a zero one is allowed, over IPv6 too: the socket decides on it later) or, when the device already did,
/// turned into a CHECKSUM_COMPLETE-style sum the inner layers can reuse. A datagram to a port a UDP tunnel socket
/// registered (<see cref="GroEngine.AddUdpTunnel"/>, udp_tunnel_sock's gro_receive) continues into the tunnel's
/// handler: the held packets of the same outer flow must have the same ports and both a checksum or both none, and
/// the tunnel then compares its own header and the inner packet. Without such a socket the datagram is flushed: no
/// UDP-GRO socket (UDP_GRO), NETIF_F_GRO_UDP_FWD or NETIF_F_GRO_FRAGLIST is modelled, so plain UDP passes up
/// unmerged and never disturbs the held flows.
/// </summary>
public static class UdpGro
{
    internal static unsafe Skb? Receive(GroEngine e, GroBucket bucket, Skb skb, bool v6)
    {
        int off = skb.Gro.DataOffset;
        if (!GroEngine.MayPull(skb, off + 8))
        {
            e.NoteNormal(GroNormalReason.Truncated);
            skb.Gro.Flush = 1;
            return null;
        }
        ushort check = GroEngine.Be16(skb.DataAddress + off + 6);
        if (skb.Gro.Flush == 0)
        {
            // Don't bother verifying a packet that is flushed anyway (as udp4_gro_receive skips it). The pseudo-header
            // is for the verification, or for the sum a tunnel's inner layers reuse: a datagram the device vouched
            // for, with no tunnel socket to take it, needs neither.
            // A zero checksum passes here over IPv6 too (udp6_gro_receive's skb_gro_checksum_validate_zero_check): the
            // socket decides later whether it takes one (no_check6_rx).
            bool tunnels = e.HasUdpTunnels;
            uint pseudo = tunnels || GroEngine.ChecksumNeeded(skb, true, check) ? Pseudo(skb, v6) : 0;
            if (GroEngine.ChecksumBad(skb, pseudo, true, check))
            {
                e.NoteNormal(GroNormalReason.BadChecksum);
                skb.Gro.Flush = 1;
                return null;
            }
            // skb_gro_checksum_try_convert: a checksum the device vouched for becomes the sum the tunnel's inner
            // layers validate against, so the inner TCP checksum costs no second pass over the data. Without a tunnel
            // socket the datagram is flushed just below and nothing reads it (UDP_GRO sockets, NETIF_F_GRO_UDP_FWD and
            // fraglist GRO, which would merge it, are not modelled).
            if (tunnels && check != 0 && skb.Gro.CsumCnt == 0 && !skb.Gro.CsumValid)
            {
                skb.Gro.Csum = (ushort)~Checksum.Fold64(pseudo);
                skb.Gro.CsumValid = true;
            }
        }
        skb.Gro.IsIpv6 = v6;
        // udp4_gro_lookup_skb, only while some tunnel socket exists (the udp_encap_needed_key static branch).
        UdpTunnelGro? tunnel = e.HasUdpTunnels ? e.LookupUdpTunnel(GroEngine.Be16(skb.LinearData, off + 2), skb.Ifindex) : null;
        return TunnelReceive(e, bucket, skb, off, check, tunnel);
    }

    /// <summary>The pseudo-header of the innermost IP header parsed (inet_gro_compute_pseudo / ip6_gro_compute_pseudo).</summary>
    private static uint Pseudo(Skb skb, bool v6)
    {
        if (!v6) return GroEngine.PseudoV4(skb, 17);
        ReadOnlySpan<byte> nh = skb.LinearData.Slice(skb.Gro.InnermostNetworkOffset);
        return Checksum.PseudoHeaderV6(nh.Slice(8, 16), nh.Slice(24, 16), 17, GroEngine.GroLen(skb));
    }

    /// <summary>udp_gro_receive.</summary>
    private static unsafe Skb? TunnelReceive(GroEngine e, GroBucket bucket, Skb skb, int off, ushort check, UdpTunnelGro? tunnel)
    {
        skb.Gro.IsFlist = false;
        if (tunnel is null)
        {
            e.NoteNormal(GroNormalReason.Udp);
            skb.Gro.Flush |= 1;
            return null;
        }
        // One tunnel level only (a tunnel inside the tunnel is flushed), and a checksum nobody has verified cannot be
        // trusted to the inner layers.
        if (skb.Gro.EncapMark != 0 || (check != 0 && skb.IpSummed != CsumState.Partial && skb.Gro.CsumCnt == 0 && !skb.Gro.CsumValid))
        {
            e.NoteNormal(GroNormalReason.Udp);
            skb.Gro.Flush |= 1;
            return null;
        }
        skb.Gro.EncapMark = 1;
        byte* uh = skb.DataAddress + off;
        uint ports = Unsafe.ReadUnaligned<uint>(uh);
        bool noCsum = check == 0;
        for (Skb? p = bucket.Head; p != null; p = p.Next)
        {
            if (!p.Gro.SameFlow) continue;
            byte* uh2 = p.DataAddress + off;
            // Same ports, and a checksum on both or on neither.
            if (Unsafe.ReadUnaligned<uint>(uh2) != ports || noCsum != (Unsafe.ReadUnaligned<ushort>(uh2 + 6) == 0))
                p.Gro.SameFlow = false;
        }
        skb.Gro.Tunnel = tunnel;
        skb.Gro.DataOffset += 8;
        GroEngine.PostPullRcsum(skb, new ReadOnlySpan<byte>(uh, 8));
        return tunnel.Receive(e, bucket, skb);
    }

    /// <summary>udp4_gro_complete: a checksummed outer header gets the pseudo-header sum for the merged length (the
    /// per-segment checksums are filled when the aggregate is cut again), then udp_gro_complete.</summary>
    internal static bool Complete4(Skb skb, int nhoff)
    {
        int ipoff = skb.Encapsulation ? skb.Gro.NetworkOffset1 : skb.Gro.NetworkOffset0;
        ReadOnlySpan<byte> iph = skb.LinearData.Slice(ipoff, 20);
        Span<byte> uh = skb.LinearData.Slice(nhoff, 8);
        if (BinaryPrimitives.ReadUInt16BigEndian(uh.Slice(6)) != 0)
        {
            uint pseudo = Checksum.PseudoHeaderV4(iph.Slice(12, 4), iph.Slice(16, 4), 17, skb.Len - nhoff);
            BinaryPrimitives.WriteUInt16BigEndian(uh.Slice(6), (ushort)Checksum.Fold64(pseudo));
        }
        return CompleteCommon(skb, nhoff);
    }

    /// <summary>udp6_gro_complete.</summary>
    internal static bool Complete6(Skb skb, int nhoff)
    {
        int ipoff = skb.Encapsulation ? skb.Gro.NetworkOffset1 : skb.Gro.NetworkOffset0;
        ReadOnlySpan<byte> iph = skb.LinearData.Slice(ipoff, 40);
        Span<byte> uh = skb.LinearData.Slice(nhoff, 8);
        if (BinaryPrimitives.ReadUInt16BigEndian(uh.Slice(6)) != 0)
        {
            uint pseudo = Checksum.PseudoHeaderV6(iph.Slice(8, 16), iph.Slice(24, 16), 17, skb.Len - nhoff);
            BinaryPrimitives.WriteUInt16BigEndian(uh.Slice(6), (ushort)Checksum.Fold64(pseudo));
        }
        return CompleteCommon(skb, nhoff);
    }

    /// <summary>udp_gro_complete: the merged length, then the tunnel's completion with skb->encapsulation set so
    /// the inner layers record their offsets. The kernel looks the socket up again; the handler found at receive
    /// is kept in the control block instead.</summary>
    private static bool CompleteCommon(Skb skb, int nhoff)
    {
        Span<byte> uh = skb.LinearData.Slice(nhoff, 8);
        BinaryPrimitives.WriteUInt16BigEndian(uh.Slice(4), (ushort)(skb.Len - nhoff));
        if (skb.Gro.Tunnel is not { } tunnel) return false; // plain UDP never merges here (udp_gro_complete_segment)
        skb.GsoType = BinaryPrimitives.ReadUInt16BigEndian(uh.Slice(6)) != 0 ? GsoType.UdpTunnelCsum : GsoType.UdpTunnel;
        // Clear the mark so the inner layers complete as a first level would, and say the headers are a tunnel's.
        skb.Gro.EncapMark = 0;
        skb.Encapsulation = true;
        return tunnel.Complete(skb, nhoff + 8);
    }
}
