using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Softnet.Packets;
using Softnet.Telemetry;
using Softnet.Topology;
using Softnet.Transport;
using Softnet.Tests.Topology;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Transport;

/// <summary>UDP delivery to scenario sockets: "right" (10.2.0.2 on rt0) behind the router's r1 (10.2.0.1).</summary>
public class UdpReceiveTests
{
    private const string R1 = "02:00:00:02:00:01", RT0 = "02:00:00:02:00:02";

    private static ScenarioRig Rig(string sockets) => new("router", new Dictionary<string, string> { ["ns/right/sockets"] = sockets });

    private static byte[] Datagram(ushort dport, int payload = 8, string dst = "10.2.0.2", ushort sport = 5000)
    {
        var ip = Udp("10.2.0.1", sport, dst, dport, payload);
        for (int i = 0; i < payload; i++) ip[28 + i] = (byte)(i * 7);
        var u = ip.AsSpan(20);
        u[6] = u[7] = 0;
        ushort c = Checksum.Compute(u, Checksum.PseudoHeaderV4(ip.AsSpan(12, 4), ip.AsSpan(16, 4), 17, u.Length));
        BinaryPrimitives.WriteUInt16BigEndian(u[6..], c == 0 ? (ushort)0xFFFF : c);
        return Eth(dst.EndsWith(".255") ? "ff:ff:ff:ff:ff:ff" : RT0, R1, ip);
    }

    private static ulong Sha(byte[] frame)
    {
        var h = SHA256.HashData(frame.AsSpan(14 + 28));
        return BinaryPrimitives.ReadUInt64BigEndian(h);
    }

    [Fact]
    public void A_bound_socket_reads_the_datagram_and_nothing_answers()
    {
        var rig = Rig("# the resolver\nudp 10.2.0.2:53   # bound to the address\n");
        rig.Ns("right").Sockets.StartRecording();
        var f = Datagram(53, 100);
        rig.Inject("right", "rt0", f);
        var sk = (UdpSock)Assert.Single(rig.Ns("right").Sockets.All);
        var d = Assert.Single(sk.Received!);
        Assert.Equal("10.2.0.1:5000", d.From.ToString());
        Assert.Equal(100, d.Length);
        Assert.Equal(Sha(f), d.Sha);
        Assert.Equal(0, sk.RmemAlloc);
        var mib = rig.Ns("right").Mib;
        Assert.Equal(1, mib[SnmpCounter.UdpInDatagrams]);
        Assert.Equal(0, mib[SnmpCounter.UdpNoPorts]);
        Assert.Empty(rig.Tx("right", "rt0"));
        Assert.Equal($"udp 10.2.0.2:53\n  datagram 10.2.0.1:5000 len 100 sha256 {Sha(f):x16}\n", ScenarioDump.SocketsText(rig.Ns("right")));
        Assert.True(rig.Ns("right").Counters.Conserved);
    }

    [Fact]
    public void A_dual_stack_wildcard_socket_takes_ipv4_and_sees_a_mapped_peer()
    {
        var rig = Rig("udp [::]:53\n");
        rig.Ns("right").Sockets.StartRecording();
        rig.Inject("right", "rt0", Datagram(53));
        var d = Assert.Single(((UdpSock)rig.Ns("right").Sockets.All[0]).Received!);
        Assert.Equal("[::ffff:10.2.0.1]:5000", d.From.ToString());
    }

    [Fact]
    public void Another_port_gets_port_unreachable_and_a_bad_checksum_gets_nothing()
    {
        var rig = Rig("udp 0.0.0.0:53\n");
        rig.Inject("right", "rt0", Datagram(54));
        var bad = Datagram(55);
        bad[14 + 20 + 6] ^= 0x55;
        rig.Inject("right", "rt0", bad);
        var mib = rig.Ns("right").Mib;
        Assert.Equal(1, mib[SnmpCounter.UdpNoPorts]);
        Assert.Equal(1, mib[SnmpCounter.UdpInCsumErrors]);
        Assert.Equal(1, mib[SnmpCounter.UdpInErrors]);
        var icmp = Assert.Single(rig.Tx("right", "rt0"));
        Assert.Equal(IpProtocols.Icmp, icmp[14 + 9]);
        Assert.Equal(3, icmp[14 + 20]);
        Assert.Equal(3, icmp[14 + 21]);
        Assert.True(rig.Ns("right").Counters.Conserved);
    }

    [Fact]
    public void A_bad_checksum_to_a_socket_is_dropped_when_read()
    {
        var rig = Rig("udp 10.2.0.2:53\n");
        rig.Ns("right").Sockets.StartRecording();
        var bad = Datagram(53);
        bad[14 + 20 + 6] ^= 0x55;
        rig.Inject("right", "rt0", bad);
        var sk = (UdpSock)rig.Ns("right").Sockets.All[0];
        Assert.Empty(sk.Received!);
        Assert.Equal(1, sk.Drops);
        var mib = rig.Ns("right").Mib;
        Assert.Equal(0, mib[SnmpCounter.UdpInDatagrams]);
        Assert.Equal(1, mib[SnmpCounter.UdpInCsumErrors]);
        Assert.Equal(1, mib[SnmpCounter.UdpInErrors]);
        Assert.Equal(1, rig.Ns("right").Counters.Drops[DropReason.UdpCsumError]);
        Assert.Empty(rig.Tx("right", "rt0"));
        Assert.True(rig.Ns("right").Counters.Conserved);
    }

    [Fact]
    public void A_lagging_reader_fills_the_receive_buffer_and_later_datagrams_are_dropped()
    {
        // SO_RCVBUF 2000 → sk_rcvbuf max(4000, SOCK_MIN_RCVBUF 2304). The queue takes datagrams while what it holds
        // is at most sk_rcvbuf (the first always fits), then drops: RcvbufErrors and InErrors.
        var rig = Rig("udp 10.2.0.2:53 rcvbuf 2000 cpu 1\n");
        rig.Stack.DeferReaders = true;
        var sk = (UdpSock)rig.Ns("right").Sockets.All[0];
        Assert.Equal(4000, sk.RcvBuf);
        Assert.Equal(1, sk.Cpu);
        int queued = 0, expectedRmem = 0;
        for (int i = 0; i < 8; i++)
        {
            rig.Inject("right", "rt0", Datagram(53));
            if (expectedRmem <= sk.RcvBuf && queued == i) { queued++; expectedRmem = sk.RmemAlloc; }
        }
        Assert.InRange(sk.Queued, 2, 7);
        var mib = rig.Ns("right").Mib;
        Assert.Equal(8 - sk.Queued, mib[SnmpCounter.UdpRcvbufErrors]);
        Assert.Equal(8 - sk.Queued, mib[SnmpCounter.UdpInErrors]);
        Assert.Equal(8 - sk.Queued, rig.Ns("right").Counters.Drops[DropReason.SocketRcvBuff]);
        int n = sk.Queued;
        rig.Stack.RunReaders();
        Assert.Equal(n, mib[SnmpCounter.UdpInDatagrams]);
        Assert.Equal(0, sk.RmemAlloc);
        rig.Inject("right", "rt0", Datagram(53));
        rig.Stack.RunReaders();
        Assert.Equal(n + 1, mib[SnmpCounter.UdpInDatagrams]);
        Assert.True(rig.Ns("right").Counters.Conserved);
    }

    [Fact]
    public void A_broadcast_reaches_the_wildcard_socket_and_without_one_is_ignored()
    {
        var rig = Rig("udp 0.0.0.0:67\n");
        rig.Ns("right").Sockets.StartRecording();
        rig.Inject("right", "rt0", Datagram(67, dst: "10.2.0.255"));
        rig.Inject("right", "rt0", Datagram(68, dst: "10.2.0.255"));
        Assert.Single(((UdpSock)rig.Ns("right").Sockets.All[0]).Received!);
        var mib = rig.Ns("right").Mib;
        Assert.Equal(1, mib[SnmpCounter.UdpInDatagrams]);
        Assert.Equal(1, mib[SnmpCounter.UdpIgnoredMulti]);
        Assert.Equal(0, mib[SnmpCounter.UdpNoPorts]);
        Assert.Empty(rig.Tx("right", "rt0"));
    }

    [Theory]
    [InlineData("udp 10.2.0.9:53\n", 1, "EADDRNOTAVAIL")]
    [InlineData("udp 0.0.0.0:53\nudp 10.2.0.2:53\n", 2, "EADDRINUSE")]
    [InlineData("udp [::]:53\n\nudp 10.2.0.2:53\n", 3, "EADDRINUSE")]
    [InlineData("tcp 10.2.0.2:80\n", 1, "tcp listen")]
    [InlineData("sctp 10.2.0.2:80\n", 1, "unknown socket kind")]
    [InlineData("udp 10.2.0.2:0\n", 1, "1-65535")]
    [InlineData("udp 10.2.0.2:53 rcvbuf\n", 1, "needs a value")]
    [InlineData("udp 10.2.0.2:53 backlog 5\n", 1, "unknown socket option")]
    [InlineData("udp fd00::1:53\n", 1, "brackets")]
    public void A_bad_sockets_line_is_rejected_with_file_and_line(string text, int line, string why)
    {
        var e = Assert.Throws<ScenarioFormatException>(() => Rig(text));
        Assert.Contains($"sockets:{line}", e.Message);
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void Udp_and_tcp_have_separate_ports()
    {
        var rig = Rig("udp 0.0.0.0:53\ntcp listen 0.0.0.0:53\n");
        Assert.Equal(2, rig.Ns("right").Sockets.All.Count);
        Assert.Equal(Encoding.ASCII.GetBytes("udp 0.0.0.0:53\ntcp listen 0.0.0.0:53\n"),
            Encoding.ASCII.GetBytes(ScenarioDump.SocketsText(rig.Ns("right"))));
    }
}
