using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Packets;

namespace Softnet.Link;

/// <summary>
/// A VXLAN device's configuration and forwarding database (struct vxlan_dev with its vxlan_config and vxlan_fdb),
/// IPv4 underlay: what `ip link add NAME type vxlan id VNI ...` and `bridge fdb append|add MAC dev NAME dst IP` set.
/// </summary>
public sealed class VxlanConfig
{
    /// <summary>The Linux default UDP port (the vxlan module's udp_port parameter), which flannel uses; IANA's is 4789.</summary>
    public const ushort LinuxDefaultPort = 8472;
    /// <summary>Outer IPv4 + UDP + VXLAN + inner Ethernet (VXLAN_HEADROOM): what the device's MTU leaves below its
    /// lower device's.</summary>
    public const int Headroom = 20 + 8 + 8 + 14;

    public uint Vni { get; set; }
    /// <summary>`dev`: the underlay device (the route lookup's output interface hint).</summary>
    public Device? Lower { get; set; }
    public ushort DstPort { get; set; } = LinuxDefaultPort;
    /// <summary>`local`: outer source address; 0 takes the route's preferred source.</summary>
    public uint Local { get; set; }
    /// <summary>`learning` (the default) or `nolearning`: snoop inner source MACs into the FDB on receive.</summary>
    public bool Learning { get; set; } = true;
    /// <summary>`udpcsum` (the default: the kernel sets VXLAN_F_UDP_ZERO_CSUM_TX only for `noudpcsum`): the outer
    /// UDP checksum is filled (the kernel leaves it CHECKSUM_PARTIAL for the device; Softnet writes it whole).</summary>
    public bool UdpCsum { get; set; } = true;
    /// <summary>`ttl N`: 0 (the default, "inherit") takes the route's hop limit (ip_default_ttl).</summary>
    public byte Ttl { get; set; }
    /// <summary>`tos N`: the outer TOS before the inner ECN bits are copied (ip_tunnel_ecn_encap).</summary>
    public byte Tos { get; set; }
    /// <summary>`srcport MIN MAX`: the outer source port range; 0/0 takes ip_local_port_range (32768 60999).</summary>
    public ushort PortMin { get; set; }
    public ushort PortMax { get; set; }

    /// <summary>vxlan_fdb: MAC → the remotes a frame to it goes to; the all-zeros MAC is the default entry
    /// (`remote`/`group`, or `bridge fdb append 00:00:00:00:00:00 ... dst IP`), used for unknown destinations.</summary>
    internal readonly Dictionary<ulong, List<uint>> Fdb = new();
    /// <summary>Entries configured (`bridge fdb`, `remote`: NUD_PERMANENT), which learning never moves.</summary>
    internal readonly HashSet<ulong> StaticFdb = new();

    /// <summary>`bridge fdb add` (the MAC must be new: NLM_F_EXCL), `append` (another remote for the all-zeros or a
    /// multicast entry; on a unicast entry, or with a remote it has, nothing changes) or `replace` (unicast only).
    /// False with the kernel's words when it refuses.</summary>
    public bool FdbAdd(ReadOnlySpan<byte> mac, uint remote, string command, out string? error)
    {
        ulong key = Device.MacKey(mac);
        bool multi = key == 0 || (mac[0] & 1) != 0;
        error = null;
        if (command == "replace")
        {
            if (multi)
            {
                error = "RTNETLINK answers: Operation not supported";
                return false;
            }
            Fdb[key] = [remote];
            StaticFdb.Add(key);
            return true;
        }
        if (Fdb.TryGetValue(key, out var remotes))
        {
            if (command != "append")
            {
                error = "RTNETLINK answers: File exists";
                return false;
            }
            // vxlan_fdb_update_existing / vxlan_fdb_append: only a non-unicast entry takes another remote.
            if (multi && !remotes.Contains(remote)) remotes.Add(remote);
            return true;
        }
        Fdb[key] = [remote];
        StaticFdb.Add(key);
        return true;
    }

    /// <summary>The remotes for a destination MAC: its own entry, else the default one, else none.</summary>
    internal List<uint>? Lookup(ReadOnlySpan<byte> mac)
    {
        if (Fdb.Count == 0) return null;
        if (Fdb.TryGetValue(Device.MacKey(mac), out var r)) return r;
        return Fdb.TryGetValue(0, out var all) ? all : null;
    }
}

/// <summary>
/// vxlan (drivers/net/vxlan/vxlan_core.c), IPv4 underlay, unicast remotes: a frame the device transmits is looked
/// up in the FDB (vxlan_xmit), wrapped in VXLAN, UDP and IPv4 headers (vxlan_xmit_one → udp_tunnel_xmit_skb) and
/// sent from the device's namespace through ip_local_out (OUTPUT, routing, POSTROUTING, the neighbour); a datagram
/// to the device's port is unwrapped (vxlan_rcv) and the inner frame received on the device: the second traversal.
/// </summary>
public sealed class VxlanLink : LinkKind
{
    public override string Name => "vxlan";

    public override DropReason Xmit(NetStack stack, Device dev, Skb skb)
    {
        var cfg = dev.Vxlan;
        var ns = dev.Namespace;
        if (cfg is null || skb.Len < 14 || !skb.MayPull(14)) { dev.TxDropped++; skb.Free(); return DropReason.VxlanNoRemote; }
        var remotes = cfg.Lookup(skb.LinearData[..6]);
        if (remotes is null || remotes.Count == 0)
        {
            // No entry and no default: vxlan_fdb_miss, then the frame is dropped (tx_dropped).
            dev.TxDropped++;
            skb.Free();
            return DropReason.VxlanNoRemote;
        }
        // One copy per remote of the entry (the default entry may list several, as flannel's does not); the last
        // remote takes the skb itself.
        for (int i = 0; i < remotes.Count; i++)
        {
            var one = i == remotes.Count - 1 ? skb : stack.Clone(skb);
            if (one is null) { dev.TxDropped++; continue; }
            XmitOne(stack, ns, dev, cfg, one, remotes[i]);
        }
        return DropReason.None;
    }

    /// <summary>vxlan_xmit_one for one IPv4 remote.</summary>
    private static void XmitOne(NetStack stack, Namespace ns, Device dev, VxlanConfig cfg, Skb skb, uint remote)
    {
        var route = ns.Routing.Lookup(remote);
        if (route is null || route.Device is null || route.Type is not (RouteKind.Unicast or RouteKind.Local))
        {
            // vxlan_get_route failed: tx_carrier_errors, dropped.
            dev.TxDropped++;
            skb.Free();
            return;
        }
        if (route.Device == dev)
        {
            // The route to the remote leads back into this device: tx_errors (collisions), dropped.
            dev.TxDropped++;
            skb.Free();
            return;
        }
        uint saddr = cfg.Local != 0 ? cfg.Local
            : route.Source != 0 ? route.Source
            : ns.SelectAddress(route.Device, route.Gateway != 0 ? route.Gateway : remote);
        if (skb.Headroom < VxlanConfig.Headroom + 2 || skb.Cloned && !skb.UnshareHead())
        {
            dev.TxDropped++;
            skb.Free();
            return;
        }
        var inner = skb.LinearData;
        // ip_tunnel_ecn_encap: the inner IPv4/IPv6 ECN bits, CE sent on as ECT(0).
        byte innerTos = 0;
        ushort innerType = BinaryPrimitives.ReadUInt16BigEndian(inner[12..]);
        if (innerType == EtherTypes.Ipv4 && inner.Length >= 15 + 1) innerTos = inner[15];
        else if (innerType == EtherTypes.Ipv6 && inner.Length >= 16) innerTos = (byte)(((inner[14] & 0x0F) << 4) | (inner[15] >> 4));
        int ecn = innerTos & 3;
        byte tos = (byte)((cfg.Tos & ~3) | (ecn == 3 ? 2 : ecn));
        ushort sport = SourcePort(skb, inner, cfg);
        int innerLen = skb.Len;
        // NetStack's checksum help for a GSO or CHECKSUM_PARTIAL inner frame happens at the wire (SoftwareGso); the
        // headers here describe the whole aggregate, as the kernel's do before GSO cuts it.
        ScrubForTunnel(skb, xnet: cfg.Lower is { } lower && lower.Namespace != ns);

        var vx = skb.Push(8);
        BinaryPrimitives.WriteUInt32BigEndian(vx, 0x0800_0000);          // flags: I (VNI valid)
        BinaryPrimitives.WriteUInt32BigEndian(vx[4..], cfg.Vni << 8);
        var udp = skb.Push(8);
        int udpLen = 8 + 8 + innerLen;
        BinaryPrimitives.WriteUInt16BigEndian(udp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], cfg.DstPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udpLen);
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], 0);
        var ip = skb.Push(20);
        ip[0] = 0x45;
        ip[1] = tos;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + udpLen));
        // ip_select_ident: the kernel keys a per-destination counter with a random secret; ours counts.
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], stack.IcmpErrorIpId++);
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0); // df unset (the default): fragments may be made
        byte ttl = cfg.Ttl != 0 ? cfg.Ttl : (byte)ns.DefaultTtl;
        ip[8] = ttl;
        ip[9] = IpProtocols.Udp;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], 0);
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], saddr);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], remote);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..20]));
        // A hint (no kernel counterpart): the outer datagram's conntrack bucket, asked for while the OUTPUT hooks
        // before nf_conntrack_in (raw, the route) run.
        if (ns.HasIptables) ns.Netfilter.Conntrack.PrefetchFor(ip);
        skb.ResetNetworkHeader();
        skb.SetTransportHeader(20);
        skb.Protocol = EtherTypes.Ipv4;
        if (cfg.UdpCsum)
        {
            var whole = stack.Linearize(skb);
            ushort c = Checksum.Compute(whole[20..(20 + udpLen)], Checksum.PseudoHeaderV4(whole[12..16], whole[16..20], IpProtocols.Udp, udpLen));
            BinaryPrimitives.WriteUInt16BigEndian(skb.LinearData[26..], c == 0 ? (ushort)0xFFFF : c);
        }
        // udp_tunnel_xmit_skb → iptunnel_xmit → ip_local_out in the device's namespace.
        Ipv4Output.LocalOut(stack, ns, skb, null, default);
    }

    /// <summary>udp_flow_src_port: the flow's hash scaled into [min, max) (with no range of its own, the
    /// namespace's ip_local_port_range, its upper end included). The kernel hashes the inner flow with a boot-time
    /// random key (skb_get_hash), so the exact port differs from a kernel's; the range and the per-flow stability
    /// are the same: the skb's hash, else a software hash of the inner addresses, protocol and ports.</summary>
    private static ushort SourcePort(Skb skb, ReadOnlySpan<byte> frame, VxlanConfig cfg)
    {
        int min = cfg.PortMin, max = cfg.PortMax;
        if (min >= max) { min = 32768; max = 60999 + 1; }
        uint hash = skb.Hash;
        if (hash == 0) hash = Gro.FlowHash.ComputeFrame(frame);
        // The kernel folds the hash's high half in: hash ^= hash << 16.
        hash ^= hash << 16;
        return (ushort)((((ulong)hash * (uint)(max - min)) >> 32) + (uint)min);
    }

    /// <summary>skb_scrub_packet as vxlan_xmit_one calls it before encapsulating.</summary>
    private static void ScrubForTunnel(Skb skb, bool xnet) => NetStack.ScrubPacket(skb, xnet);

    /// <summary>
    /// The GRO side of vxlan_open's socket (vxlan_socket_create → setup_udp_tunnel_sock with vxlan_gro_receive and
    /// vxlan_gro_complete): each port an up VXLAN device of <paramref name="ns"/> listens on is registered once on
    /// <paramref name="engine"/>, the GRO engine of a NIC whose packets arrive in that namespace (on interface
    /// <paramref name="ifindex"/>, -1 for all its interfaces). Returns the ports registered.
    /// </summary>
    public static IReadOnlyList<ushort> RegisterGro(Namespace ns, Gro.GroEngine engine, int ifindex = -1)
    {
        var ports = new List<ushort>();
        foreach (var d in ns.Devices)
            if (d.Vxlan is { } c && d.Up && !ports.Contains(c.DstPort)) ports.Add(c.DstPort);
        foreach (var port in ports) engine.AddUdpTunnel(port, Gro.VxlanGro.Instance, ifindex);
        return ports;
    }

    /// <summary>
    /// vxlan_rcv: a datagram that reached the device's UDP port (the UDP header at <paramref name="udpOffset"/> of
    /// the linear data, which starts at the outer IPv4 header). True when the frame was taken (received on the
    /// VXLAN device or dropped with a reason); false when no VXLAN device of the namespace listens on the port.
    /// </summary>
    public static bool Receive(NetStack stack, Namespace ns, Skb skb, int udpOffset, ushort dport)
    {
        // The port's kernel socket exists while a VXLAN device on it is up (vxlan_open / vxlan_stop); only up devices
        // are found by VNI.
        Device? any = null;
        foreach (var d in ns.Devices)
            if (d.Vxlan is { } c && c.DstPort == dport && d.Up) { any = d; break; }
        if (any is null) return false;
        var pkt = skb.LinearData;
        if (skb.Len < udpOffset + 16 || !skb.MayPull(udpOffset + 16))
        {
            Drop(ns, skb, DropReason.PktTooSmall);
            return true;
        }
        pkt = skb.LinearData;
        uint flags = BinaryPrimitives.ReadUInt32BigEndian(pkt[(udpOffset + 8)..]);
        uint vniField = BinaryPrimitives.ReadUInt32BigEndian(pkt[(udpOffset + 12)..]);
        if ((flags & 0x0800_0000) == 0)
        {
            Drop(ns, skb, DropReason.VxlanInvalidHdr);
            return true;
        }
        uint vni = vniField >> 8;
        Device? dev = null;
        foreach (var d in ns.Devices)
            if (d.Vxlan is { } c && c.DstPort == dport && c.Vni == vni && d.Up) { dev = d; break; }
        if (dev is null)
        {
            Drop(ns, skb, DropReason.VxlanVniNotFound);
            return true;
        }
        var cfg = dev.Vxlan!;
        // Reserved bits set that no extension (GBP, GPE, remote checksum offload) claimed: a malformed header.
        if ((flags & ~0x0800_0000u) != 0 || (vniField & 0xFF) != 0)
        {
            dev.RxErrors++;
            dev.RxFrameErrors++;
            Drop(ns, skb, DropReason.VxlanInvalidHdr);
            return true;
        }
        // The outer header's ECN and source, for decapsulation and learning.
        byte outerTos = pkt[1];
        uint outerSrc = BinaryPrimitives.ReadUInt32BigEndian(pkt[12..]);
        int pull = udpOffset + 16;
        if (skb.Len < pull + 14 || !skb.MayPull(pull + 14))
        {
            Drop(ns, skb, DropReason.PktTooSmall);
            return true;
        }
        skb.Pull(pull);
        NetStack.ScrubPacket(skb, xnet: cfg.Lower is { } lower && lower.Namespace != ns);
        // __iptunnel_pull_header's skb_clear_hash_if_not_l4: a hash over the outer UDP 4-tuple (the NIC's RSS, or the
        // flow dissector's for RPS) stays with the inner frame, so RPS/RFS on the vxlan device steer by it.
        if (!skb.L4Hash) skb.ClearHash();
        // iptunnel_pull_offloads: a GRO aggregate keeps its GSO size and segment count (the inner frame goes on as one
        // skb of N segments) and loses only the tunnel bits; the headers at data are no longer a tunnel's.
        if (skb.IsGso) skb.GsoType &= ~GsoType.EncapAll;
        skb.Encapsulation = false;
        var inner = skb.LinearData;
        // vxlan_set_mac: a frame from our own MAC is a loop (or our multicast coming back).
        if (inner[6..12].SequenceEqual(dev.Mac))
        {
            Drop(ns, skb, DropReason.LocalMac);
            return true;
        }
        if (cfg.Learning)
        {
            // vxlan_set_mac: learning refuses an invalid source MAC; vxlan_snoop then learns where it is, or moves a
            // learned entry (a configured one is never moved: the frame is dropped).
            if ((inner[6] & 1) != 0 || inner[6..12].SequenceEqual(stackalloc byte[6]))
            {
                Drop(ns, skb, DropReason.MacInvalidSource);
                return true;
            }
            ulong key = Device.MacKey(inner[6..12]);
            if (!cfg.Fdb.TryGetValue(key, out var r)) cfg.Fdb[key] = [outerSrc];
            else if (r[0] != outerSrc)
            {
                if (cfg.StaticFdb.Contains(key))
                {
                    Drop(ns, skb, DropReason.VxlanEntryExists);
                    return true;
                }
                r[0] = outerSrc;
            }
        }
        // IP_ECN_decapsulate: outer CE onto an ECN-capable inner packet; CE over a not-ECT inner one is an error.
        if ((outerTos & 3) == 3 && !EcnDecapsulate(skb))
        {
            dev.RxErrors++;
            dev.RxFrameErrors++;
            Drop(ns, skb, DropReason.IpTunnelEcn);
            return true;
        }
        // gro_cells_receive → netif_receive_skb on the VXLAN device (no GRO cell here: the frame is received as is).
        // udp_rcv used up a CHECKSUM_UNNECESSARY level on the outer checksum (__skb_decr_checksum_unnecessary): a level
        // GRO added for the inner checksum it verified stays; a GRO aggregate stays CHECKSUM_PARTIAL (its inner TCP
        // checksum holds the pseudo-header sum GRO completion wrote).
        if (skb.IpSummed == CsumState.Unnecessary && skb.CsumLevel > 0) skb.CsumLevel--;
        else if (skb.IpSummed != CsumState.Partial) skb.IpSummed = CsumState.None;
        stack.NetifRx(dev, skb);
        return true;
    }

    /// <summary>INET_ECN_decapsulate for an IPv4 or IPv6 inner packet after an outer CE mark. False when the inner
    /// packet is not ECN-capable (the frame is dropped).</summary>
    private static bool EcnDecapsulate(Skb skb)
    {
        var f = skb.LinearData;
        if (f.Length < 14 + 20) return true;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(f[12..]);
        if (type == EtherTypes.Ipv4)
        {
            var ip = f[14..];
            int ecn = ip[1] & 3;
            if (ecn == 0) return false;
            if (ecn == 3) return true;
            // IP_ECN_set_ce with the incremental checksum update.
            ushort old = BinaryPrimitives.ReadUInt16BigEndian(ip[0..]);
            ip[1] |= 3;
            ushort now = BinaryPrimitives.ReadUInt16BigEndian(ip[0..]);
            ushort sum = BinaryPrimitives.ReadUInt16BigEndian(ip[10..]);
            uint s = (uint)(~sum & 0xFFFF) + (uint)(~old & 0xFFFF) + now;
            s = (s & 0xFFFF) + (s >> 16);
            s = (s & 0xFFFF) + (s >> 16);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)~s);
            return true;
        }
        if (type == EtherTypes.Ipv6)
        {
            var ip = f[14..];
            int ecn = (ip[1] >> 4) & 3;
            if (ecn == 0) return false;
            ip[1] |= 0x30;
            return true;
        }
        return true;
    }

    // The datagram was delivered to UDP (counted there); its end is a transport drop.
    private static void Drop(Namespace ns, Skb skb, DropReason reason) => Transport.InetProtocol.DropDelivered(ns, skb, reason);
}
