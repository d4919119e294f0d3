using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Tests.Netfilter;
using Softnet.Tests.Topology;
using Softnet.Topology;
using Xunit;

namespace Softnet.Tests.Link;

/// <summary>VXLAN devices on the flannel-vxlan scenario (the one the kernel comparison runs): pod1 - node1 ==eth1== node2 - pod2,
/// flannel.1 (id 1, port 8472) on both nodes.</summary>
public class VxlanTests
{
    private const string Scenario = "../../../Softnet.KernelTests/Scenarios/flannel-vxlan";
    private const string Pod1Mac = "02:00:0a:f4:00:02", Vethp1 = "02:00:0a:f4:00:01", Eth1Node1 = "02:00:0a:00:00:01", Eth1Node2 = "02:00:0a:00:00:02";
    private const string Flannel1 = "02:00:0f:00:00:01", Flannel2 = "02:00:0f:00:00:02";

    private static ScenarioRig Rig(IReadOnlyDictionary<string, string>? extra = null) => new(Scenario, extra);

    [Fact]
    public void Loader_builds_the_devices_the_kernel_would()
    {
        var rig = Rig();
        var f = rig.Dev("node1", "flannel.1");
        Assert.Equal("vxlan", f.Kind.Name);
        Assert.Equal(1450, f.Mtu); // eth1's 1500 less VXLAN_HEADROOM
        var cfg = f.Vxlan!;
        Assert.Equal(1u, cfg.Vni);
        Assert.Equal(8472, cfg.DstPort);
        Assert.False(cfg.Learning);
        Assert.True(cfg.UdpCsum);
        Assert.Same(rig.Dev("node1", "eth1"), cfg.Lower);
        Assert.Contains((ushort)8472, rig.Ns("node1").UdpTunnelPorts);
    }

    [Fact]
    public void A_frame_crosses_the_overlay_encapsulated_and_comes_out_at_the_pod()
    {
        var rig = Rig();
        var inner = PacketBuilder.Udp("10.244.0.2", 40000, "10.244.1.2", 53, payload: 20);
        rig.Inject("node1", "vethp1", ScenarioRig.Eth(Vethp1, Pod1Mac, inner));

        var outer = Assert.Single(rig.Tx("node1", "eth1"));
        Assert.Equal(ScenarioRig.Mac(Eth1Node2), outer[..6]);
        Assert.Equal(ScenarioRig.Mac(Eth1Node1), outer[6..12]);
        var ip = outer.AsSpan(14);
        Assert.Equal(0x45, ip[0]);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x4000); // DF clear
        Assert.Equal(64, ip[8]);
        Assert.Equal(17, ip[9]);
        Assert.Equal(Ipv4.Parse("10.0.0.1"), ScenarioRig.Src(outer));
        Assert.Equal(Ipv4.Parse("10.0.0.2"), ScenarioRig.Dst(outer));
        Assert.True(Checksum.Verify(ip[..20]));
        ushort sport = ScenarioRig.SrcPort(outer);
        Assert.InRange(sport, 32768, 60999);
        Assert.Equal(8472, ScenarioRig.DstPort(outer));
        var udp = ip[20..];
        int ulen = BinaryPrimitives.ReadUInt16BigEndian(udp[4..]);
        Assert.Equal(8 + 8 + 14 + inner.Length, ulen);
        Assert.True(Checksum.Verify(udp[..ulen], Checksum.PseudoHeaderV4(ip[12..16], ip[16..20], 17, ulen)));
        Assert.Equal(0x0800_0000u, BinaryPrimitives.ReadUInt32BigEndian(udp[8..]));
        Assert.Equal(1u << 8, BinaryPrimitives.ReadUInt32BigEndian(udp[12..]));
        var innerFrame = udp[16..ulen];
        Assert.Equal(ScenarioRig.Mac(Flannel2), innerFrame[..6].ToArray());
        Assert.Equal(ScenarioRig.Mac(Flannel1), innerFrame[6..12].ToArray());
        Assert.Equal(63, innerFrame[14 + 8]); // node1 forwarded it

        // node2: the datagram is delivered to port 8472, the inner frame received on flannel.1 and routed to pod2.
        Assert.Single(rig.Rx("node2", "flannel.1"));
        var atPod = Assert.Single(rig.Rx("pod2", "eth0"));
        Assert.Equal(62, atPod[14 + 8]);
        Assert.Equal(Ipv4.Parse("10.244.1.2"), ScenarioRig.Dst(atPod));
    }

    [Fact]
    public void The_outer_source_port_follows_the_flow()
    {
        var rig = Rig();
        // The second round's datagrams are longer: length, ID and checksums differ, the flow does not.
        for (int i = 0; i < 2; i++)
            foreach (ushort sport in new ushort[] { 40000, 40001, 40002, 40003 })
                rig.Inject("node1", "vethp1", ScenarioRig.Eth(Vethp1, Pod1Mac, PacketBuilder.Udp("10.244.0.2", sport, "10.244.1.2", 53, payload: 8 + 100 * i)));
        var ports = rig.Tx("node1", "eth1").Select(ScenarioRig.SrcPort).ToList();
        Assert.Equal(8, ports.Count);
        Assert.Equal(ports[..4], ports[4..]);
        Assert.True(ports[..4].Distinct().Count() > 1, "four flows all hashed to one port");
    }

    [Fact]
    public void Outer_ce_marks_an_ect_inner_packet_ce_and_keeps_its_checksum_valid()
    {
        var rig = Rig();
        var inner = PacketBuilder.Udp("10.244.1.2", 53, "10.244.0.2", 40000);
        inner[1] = 0x02; // ECT(0)
        inner[10] = inner[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(inner.AsSpan(10), Checksum.Compute(inner.AsSpan(0, 20)));
        rig.Inject("node1", "eth1", ScenarioRig.Eth(Eth1Node1, Eth1Node2, Outer(ScenarioRig.Eth(Flannel1, Flannel2, inner), tos: 0x03)));
        var atPod = Assert.Single(rig.Rx("pod1", "eth0"));
        Assert.Equal(0x03, atPod[14 + 1] & 3);
        Assert.True(Checksum.Verify(atPod.AsSpan(14, 20)));
    }

    [Fact]
    public void Malformed_datagrams_are_dropped_with_the_kernels_reasons()
    {
        var rig = Rig();
        var inner = ScenarioRig.Eth(Flannel1, Flannel2, PacketBuilder.Udp("10.244.1.2", 53, "10.244.0.2", 40000));
        void FromNode2(byte[] outer) => rig.Inject("node1", "eth1", ScenarioRig.Eth(Eth1Node1, Eth1Node2, outer));
        FromNode2(Outer(inner, vni: 2));
        FromNode2(Outer(inner, flags: 0));
        FromNode2(Outer(inner, flags: 0x0c00_0000));
        FromNode2(Outer(ScenarioRig.Eth(Flannel1, Flannel1, PacketBuilder.Udp("10.244.1.2", 53, "10.244.0.2", 40000))));
        FromNode2(Outer(inner, tos: 0x03)); // CE over not-ECT
        var drops = rig.Ns("node1").Counters.Drops;
        Assert.Equal(1, drops[DropReason.VxlanVniNotFound]);
        Assert.Equal(2, drops[DropReason.VxlanInvalidHdr]);
        Assert.Equal(1, drops[DropReason.LocalMac]);
        Assert.Equal(1, drops[DropReason.IpTunnelEcn]);
        Assert.Equal(2, rig.Dev("node1", "flannel.1").RxFrameErrors);
        Assert.Empty(rig.Rx("pod1", "eth0"));
        Assert.True(rig.Ns("node1").Counters.Conserved);
    }

    [Fact]
    public void A_destination_without_fdb_entry_is_dropped_at_the_device()
    {
        var rig = Rig();
        rig.Inject("node1", "vethp1", ScenarioRig.Eth(Vethp1, Pod1Mac, PacketBuilder.Udp("10.244.0.2", 40000, "10.244.1.3", 53)));
        Assert.Empty(rig.Tx("node1", "eth1"));
        Assert.Equal(1, rig.Dev("node1", "flannel.1").TxDropped);
    }

    [Fact]
    public void Learning_takes_the_inner_source_mac_from_the_outer_source()
    {
        var rig = Rig(new Dictionary<string, string>
        {
            ["ns/node1/ip.batch"] = File.ReadAllText(Path.Combine(TopologyTestData.PathOf(Scenario), "ns/node1/ip.batch")).Replace(" nolearning", " learning"),
        });
        var inner = ScenarioRig.Eth(Flannel1, "02:00:0f:00:00:77", PacketBuilder.Udp("10.244.1.2", 53, "10.244.0.2", 40000));
        rig.Inject("node1", "eth1", ScenarioRig.Eth(Eth1Node1, Eth1Node2, Outer(inner)));
        Assert.Single(rig.Rx("pod1", "eth0"));
        Assert.True(rig.Dev("node1", "flannel.1").Vxlan!.Fdb.ContainsKey(Device.MacKey(ScenarioRig.Mac("02:00:0f:00:00:77"))));
    }

    [Fact]
    public void Learning_never_moves_a_configured_entry_and_refuses_invalid_sources()
    {
        var rig = Rig(new Dictionary<string, string>
        {
            ["ns/node1/ip.batch"] = File.ReadAllText(Path.Combine(TopologyTestData.PathOf(Scenario), "ns/node1/ip.batch")).Replace(" nolearning", " learning"),
        });
        // node2's flannel MAC is configured at 10.0.0.2; a frame from it via another address is refused.
        var outer = Outer(ScenarioRig.Eth(Flannel1, Flannel2, PacketBuilder.Udp("10.244.1.2", 53, "10.244.0.2", 40000)));
        outer[12 + 3] = 9; // from 10.0.0.9
        outer[10] = outer[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(outer.AsSpan(10), Checksum.Compute(outer.AsSpan(0, 20)));
        rig.Inject("node1", "eth1", ScenarioRig.Eth(Eth1Node1, Eth1Node2, outer));
        rig.Inject("node1", "eth1", ScenarioRig.Eth(Eth1Node1, Eth1Node2, Outer(ScenarioRig.Eth(Flannel1, "03:00:0f:00:00:02", PacketBuilder.Udp("10.244.1.2", 53, "10.244.0.2", 40000)))));
        var drops = rig.Ns("node1").Counters.Drops;
        Assert.Equal(1, drops[DropReason.VxlanEntryExists]);
        Assert.Equal(1, drops[DropReason.MacInvalidSource]);
        Assert.Empty(rig.Rx("pod1", "eth0"));
    }

    [Theory]
    [InlineData("ns/node1/ip.batch", "link add vx9 type vxlan dev eth1 dstport 8472\n", "vxlan: missing virtual network identifier")]
    [InlineData("ns/node1/ip.batch", "link add vx9 type vxlan id 16777216\n", "invalid id \"16777216\"")]
    [InlineData("ns/node1/ip.batch", "link add vx9 type vxlan id 5 remote 239.1.1.1\n", "remote address must be a unicast address")]
    [InlineData("ns/node1/ip.batch", "link add vx9 type vxlan id 5 gbp\n", "unsupported vxlan option 'gbp'")]
    [InlineData("ns/node1/bridge.batch", "fdb add 02:00:0f:00:00:02 dev flannel.1 dst 10.0.0.2 self permanent\nfdb add 02:00:0f:00:00:02 dev flannel.1 dst 10.0.0.3\n", "RTNETLINK answers: File exists")]
    [InlineData("ns/node1/bridge.batch", "fdb add 02:00:0f:00:00:05 dev eth1 dst 10.0.0.2\n", "eth1 is not a vxlan device")]
    [InlineData("ns/node1/bridge.batch", "fdb append 02:00:0f:00:00:05 dev flannel.1\n", "needs 'dst'")]
    [InlineData("ns/node1/bridge.batch", "mdb add dev br0 port p1 grp 239.1.1.1\n", "unsupported bridge object 'mdb'")]
    public void Bad_vxlan_lines_are_rejected_with_file_and_line(string file, string text, string message)
    {
        string original = File.ReadAllText(Path.Combine(TopologyTestData.PathOf(Scenario), file));
        string content = file.EndsWith("ip.batch", StringComparison.Ordinal) ? original + text : text;
        var e = Assert.Throws<ScenarioFormatException>(() => Rig(new Dictionary<string, string> { [file] = content }));
        Assert.Contains(message, e.Reason);
        Assert.EndsWith(file.Replace('/', Path.DirectorySeparatorChar), e.File);
        Assert.True(e.Line > 0);
    }

    /// <summary>node2 → node1:8472 around <paramref name="innerFrame"/>, zero UDP checksum, DF clear.</summary>
    private static byte[] Outer(byte[] innerFrame, uint vni = 1, uint flags = 0x0800_0000, byte tos = 0)
    {
        var b = PacketBuilder.Udp("10.0.0.2", 45000, "10.0.0.1", 8472, payload: 8 + innerFrame.Length);
        var u = b.AsSpan(20);
        BinaryPrimitives.WriteUInt32BigEndian(u[8..], flags);
        BinaryPrimitives.WriteUInt32BigEndian(u[12..], vni << 8);
        innerFrame.CopyTo(u[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(u[6..], 0);
        b[1] = tos;
        b[6] = 0;
        b[10] = b[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(10), Checksum.Compute(b.AsSpan(0, 20)));
        return b;
    }
}
