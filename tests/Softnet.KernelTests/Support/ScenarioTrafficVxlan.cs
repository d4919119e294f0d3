using System.Buffers.Binary;
using Softnet.Packets;
using Softnet.Tests.Support;

namespace Softnet.KernelTests.Support;

/// <summary>
/// flannel-vxlan: pod1 (10.244.0.2) behind node1, pod2 (10.244.1.2) behind node2, the nodes joined by eth1
/// (10.0.0.1 / 10.0.0.2) and by flannel.1 (VXLAN id 1, port 8472, no learning). Frames enter node1 from pod1 (vethp1:
/// encapsulated by node1, decapsulated by node2, forwarded to pod2) and from node2's side of the wire (eth1: VXLAN
/// datagrams as node2 would send them, and malformed ones).
/// </summary>
public static class ScenarioTrafficVxlan
{
    private const string Pod1 = "10.244.0.2", Pod2 = "10.244.1.2", Node1 = "10.0.0.1", Node2 = "10.0.0.2";
    private const string Pod1Mac = "02:00:0a:f4:00:02", Vethp1 = "02:00:0a:f4:00:01";
    private const string Eth1Node1 = "02:00:0a:00:00:01", Eth1Node2 = "02:00:0a:00:00:02";
    private const string Flannel1 = "02:00:0f:00:00:01", Flannel2 = "02:00:0f:00:00:02";

    public static ScenarioCapture FlannelVxlan()
    {
        var c = new ScenarioCapture();
        void FromPod1(byte[] ip, string note) => c.Add("vethp1", Frames.Eth(Vethp1, Pod1Mac, ip), note);
        void FromNode2(byte[] outer, string note) => c.Add("eth1", Frames.Eth(Eth1Node1, Eth1Node2, outer), note);
        byte[] Inner(byte[] ip, string src = Flannel2) => Frames.Eth(Flannel1, src, ip);

        FromPod1(Frames.Echo(Pod1, Pod2, 8, 7, 1), "echo request pod1 -> pod2 (encapsulated, decapsulated by node2)");
        FromPod1(Frames.Udp(Pod1, 40000, Pod2, 53), "UDP pod1 -> pod2");
        FromPod1(Frames.Tcp(Pod1, 50000, Pod2, 80, TcpFlags.Syn, 100), "TCP SYN pod1 -> pod2");
        FromPod1(Frames.Tcp(Pod1, 50001, Pod2, 80, TcpFlags.Syn, 200), "another flow's SYN (its own outer source port)");
        FromPod1(Frames.WithTos(Frames.Udp(Pod1, 40001, Pod2, 53), 0x02), "ECT(0) inner: the outer header carries ECT(0)");
        FromPod1(Frames.WithTos(Frames.Udp(Pod1, 40002, Pod2, 53), 0xb8 | 0x03), "CE inner with DSCP EF: the outer gets ECT(0), no DSCP");
        FromPod1(Frames.Udp(Pod1, 40003, Pod2, 9, payload: 1400), "1428-byte datagram: fits flannel.1's MTU 1450");
        FromPod1(Frames.Udp(Pod1, 40004, Pod2, 9, payload: 1440), "1468-byte DF datagram: over flannel.1's MTU 1450 (fragmentation needed)");
        FromPod1(Frames.Echo(Pod1, "10.244.1.3", 8, 7, 2), "echo to a pod whose MAC has no FDB entry (vxlan_no_remote)");

        FromNode2(Vxlan(1, Inner(Frames.Echo(Pod2, Pod1, 0, 7, 1))), "echo reply pod2 -> pod1, VXLAN from node2");
        FromNode2(Vxlan(1, Inner(Frames.Udp(Pod2, 53, Pod1, 40000)), udpChecksum: true), "UDP reply with an outer UDP checksum");
        FromNode2(Vxlan(1, Inner(Frames.Udp(Pod2, 53, Pod1, 40001)), udpChecksum: true, badChecksum: true), "outer UDP checksum wrong (UDP InCsumErrors)");
        FromNode2(Vxlan(2, Inner(Frames.Udp(Pod2, 53, Pod1, 40000))), "unknown VNI 2 (vxlan_vni_not_found)");
        FromNode2(Vxlan(1, Inner(Frames.Udp(Pod2, 53, Pod1, 40000)), flags: 0), "no I flag (vxlan_invalid_hdr)");
        FromNode2(Vxlan(1, Inner(Frames.Udp(Pod2, 53, Pod1, 40000)), flags: 0x0c00_0000), "a reserved flag set (vxlan_invalid_hdr, rx_frame_errors)");
        FromNode2(Vxlan(1, Inner(Frames.Udp(Pod2, 53, Pod1, 40000), src: Flannel1)), "inner source MAC is node1's own (local_mac)");
        FromNode2(Vxlan(1, Inner(Frames.Udp(Pod2, 53, Pod1, 40000)), tos: 0x03), "outer CE over a not-ECT inner packet (ip_tunnel_ecn)");
        // Outer CE over an ECT(0) inner packet is left to the unit tests: vxlan_rcv marks the inner header CE in place, in
        // data the packet socket's clone still shares, so the kernel's rx capture of eth1 shows the rewritten byte.
        FromNode2(Truncated(), "VXLAN header cut short (pkt_too_small)");
        return c;
    }

    /// <summary>
    /// The embedded default of `softnet replay` (two Kubernetes nodes, flannel VXLAN, kube-proxy's and flanneld's rules,
    /// conntrack on both nodes): pod A (10.244.0.2, behind node A's cni0) sends to node B's host (MASQUERADEd by node A)
    /// and to pod B (over VXLAN). Echo requests come back as replies; UDP to a port nobody holds and TCP to a closed
    /// port come back as port unreachable (RELATED, translated back) and resets: both directions of both paths, outer
    /// headers built by each node's flannel.1. Injected on node A's veth0, as pod A transmits.
    /// </summary>
    public static ScenarioCapture TwoNodeDefault()
    {
        const string podA = "10.244.0.2", podB = "10.244.1.2", nodeB = "10.0.0.2", podAMac = "02:00:0a:f4:00:02", cni0 = "02:00:0a:f4:00:01";
        var c = new ScenarioCapture();
        void FromPodA(byte[] ip, string note) => c.Add("veth0", Frames.Eth(cni0, podAMac, ip), note);
        for (ushort i = 1; i <= 3; i++)
        {
            FromPodA(Frames.Echo(podA, nodeB, 8, 0x77, i), $"echo pod A -> node B's host #{i} (MASQUERADE to node A's address)");
            FromPodA(Frames.Echo(podA, podB, 8, 0x78, i), $"echo pod A -> pod B #{i} (VXLAN both ways)");
        }
        for (ushort k = 0; k < 4; k++)
        {
            FromPodA(Frames.Udp(podA, (ushort)(41000 + k), nodeB, 9), "UDP pod A -> node B's host, no socket (port unreachable, RELATED, un-NATed)");
            FromPodA(Frames.Udp(podA, (ushort)(42000 + k), podB, 9), "UDP pod A -> pod B, no socket (port unreachable over VXLAN; another outer source port)");
        }
        FromPodA(Frames.Tcp(podA, 43000, nodeB, 81, TcpFlags.Syn, 7000), "TCP SYN pod A -> node B's host, closed port (reset)");
        FromPodA(Frames.Tcp(podA, 43001, podB, 81, TcpFlags.Syn, 8000), "TCP SYN pod A -> pod B, closed port (reset over VXLAN)");
        FromPodA(Frames.Udp(podA, 44000, podB, 9, payload: 1400), "1428-byte datagram: fits pod A's and flannel.1's MTU 1450");
        return c;
    }

    /// <summary>An outer IPv4/UDP/VXLAN datagram to port 8472 around <paramref name="innerFrame"/>, node2 → node1 unless
    /// <paramref name="src"/> and <paramref name="dst"/> say otherwise; no DF, as a tunnel device sends it.</summary>
    public static byte[] Vxlan(uint vni, byte[] innerFrame, uint flags = 0x0800_0000, bool udpChecksum = false, bool badChecksum = false, byte tos = 0,
        string src = Node2, string dst = Node1, ushort sport = 45000, ushort id = 0x2222)
        => VxlanPackets.Datagram(innerFrame, Frames.Ip4(src), Frames.Ip4(dst), vni, sport, flags: flags, id: id, tos: tos,
            udpChecksum: udpChecksum, checksumXor: (ushort)(badChecksum ? 0x1111 : 0));

    private static byte[] Truncated()
    {
        var u = new byte[8 + 4];
        BinaryPrimitives.WriteUInt16BigEndian(u, 45001);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(2), 8472);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(4), (ushort)u.Length);
        BinaryPrimitives.WriteUInt32BigEndian(u.AsSpan(8), 0x0800_0000);
        var ip = Frames.Ipv4(Node2, Node1, 17, u, id: 0x2223);
        ip[6] = 0;
        return Frames.WithTos(ip, 0);
    }
}
