using System.Buffers.Binary;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Tests.Topology;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Ip;

/// <summary>TCP answers carry the segment's IP options: a SYN's echoed options are saved with the request
/// (tcp_v4_save_options) and built into the SYN-ACK and every later segment (ip_options_build); the TCP checksum keeps
/// the real peer even when a reversed source route sends the segment to its first hop.</summary>
public class Ipv4OptionsTcpTests
{
    private const string Vs = "02:00:00:77:00:01", Vc = "02:00:00:77:00:02";

    private static ScenarioRig Host() => new("tcp-host", new Dictionary<string, string>
    {
        ["ns/srv/sysctl.conf"] = "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv4.conf.all.accept_source_route = 1\n",
        ["ns/srv/ip.batch"] = "link set vs up\naddr add 10.77.0.1/24 dev vs\nneigh add 10.77.0.2 lladdr 02:00:00:77:00:02 dev vs nud permanent\n" +
            "neigh add 10.77.0.9 lladdr 02:00:00:77:00:02 dev vs nud permanent\n",
    });

    private static List<byte[]> Ipv4Out(ScenarioRig rig)
        => rig.Tx("srv", "vs").Where(f => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x0800).Select(f => f[14..]).ToList();

    private static bool TcpChecksumOk(byte[] ip, uint remote)
    {
        int hl = (ip[0] & 0xF) * 4;
        var r = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(r, remote);
        return Checksum.Verify(ip.AsSpan(hl), Checksum.PseudoHeaderV4(ip.AsSpan(12, 4), r, 6, ip.Length - hl));
    }

    [Fact]
    public void Syn_ack_and_later_acks_carry_the_echoed_record_route()
    {
        var rig = Host();
        var syn = Ipv4OptionsPathTests.WithOptions(Tcp("10.77.0.2", 40000, "10.77.0.1", 5001, (byte)TcpFlags.Syn, 1000), [7, 11, 4, .. new byte[8]]);
        rig.Inject("srv", "vs", Eth(Vs, Vc, syn));
        var synAck = Assert.Single(Ipv4Out(rig));
        Assert.Equal(0x48, synAck[0]);
        Assert.Equal(new byte[] { 7, 11, 12 }, synAck[20..23]);
        Assert.Equal(A("10.77.0.1"), BinaryPrimitives.ReadUInt32BigEndian(synAck.AsSpan(27)));
        Assert.Equal(0x12, synAck[32 + 13]);
        Assert.True(Checksum.Verify(synAck.AsSpan(0, 32)));
        Assert.True(TcpChecksumOk(synAck, A("10.77.0.2")));
        uint isn = BinaryPrimitives.ReadUInt32BigEndian(synAck.AsSpan(32 + 4));
        // The handshake's ACK, then data: the connection's ACK carries the options too.
        rig.Inject("srv", "vs", Eth(Vs, Vc, Tcp("10.77.0.2", 40000, "10.77.0.1", 5001, (byte)TcpFlags.Ack, 1001, isn + 1)));
        rig.Inject("srv", "vs", Eth(Vs, Vc, Tcp("10.77.0.2", 40000, "10.77.0.1", 5001, (byte)(TcpFlags.Ack | TcpFlags.Psh), 1001, isn + 1, payload: 100)));
        rig.Inject("srv", "vs", Eth(Vs, Vc, Tcp("10.77.0.2", 40000, "10.77.0.1", 5001, (byte)(TcpFlags.Ack | TcpFlags.Fin), 1101, isn + 1)));
        var later = Ipv4Out(rig).Skip(1).ToList();
        Assert.NotEmpty(later);
        foreach (var seg in later)
        {
            Assert.Equal(0x48, seg[0]);
            Assert.Equal(new byte[] { 7, 11, 12 }, seg[20..23]);
            Assert.True(TcpChecksumOk(seg, A("10.77.0.2")));
        }
    }

    [Fact]
    public void Syn_ack_goes_back_by_the_reversed_source_route()
    {
        var rig = Host();
        // Arrived from 10.77.0.2 via 10.77.0.9 (its loose source route used up).
        var syn = Ipv4OptionsPathTests.WithOptions(Tcp("10.77.0.2", 40001, "10.77.0.1", 5001, (byte)TcpFlags.Syn, 2000), [131, 7, 8, 10, 77, 0, 9]);
        rig.Inject("srv", "vs", Eth(Vs, Vc, syn));
        var synAck = Assert.Single(Ipv4Out(rig));
        Assert.Equal(A("10.77.0.9"), BinaryPrimitives.ReadUInt32BigEndian(synAck.AsSpan(16)));
        Assert.Equal(new byte[] { 131, 7, 4 }, synAck[20..23]);
        Assert.Equal(A("10.77.0.2"), BinaryPrimitives.ReadUInt32BigEndian(synAck.AsSpan(23)));
        Assert.True(TcpChecksumOk(synAck, A("10.77.0.2")));
    }
}
