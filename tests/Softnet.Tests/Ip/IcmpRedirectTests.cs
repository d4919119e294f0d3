using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;
using Softnet.Tests.Topology;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;

namespace Softnet.Tests.Ip;

/// <summary>
/// A host's redirects about its TCP connection: srv (10.77.0.1) reaches the client 10.88.0.5 through 10.77.0.2; the
/// client connects to :5001, then 10.77.0.2 redirects srv to 10.77.0.9 quoting srv's segment (tcp_v4_err → do_redirect
/// → __ip_do_redirect → update_or_create_fnhe).
/// </summary>
public sealed class IcmpRedirectTests
{
    private const string Vs = "02:00:00:77:00:01", Vc = "02:00:00:77:00:02";

    private static ScenarioRig Host() => new("tcp-host", new Dictionary<string, string>
    {
        ["ns/srv/ip.batch"] = "link set vs up\naddr add 10.77.0.1/24 dev vs\nneigh add 10.77.0.2 lladdr 02:00:00:77:00:02 dev vs nud permanent\n" +
            "neigh add 10.77.0.9 lladdr 02:00:00:77:00:09 dev vs nud permanent\nroute add 10.88.0.0/24 via 10.77.0.2 dev vs\n",
    });

    /// <summary>The handshake from 10.88.0.5:40000; returns srv's ISN.</summary>
    private static uint Connect(ScenarioRig rig)
    {
        rig.Inject("srv", "vs", ScenarioRig.Eth(Vs, Vc, Tcp("10.88.0.5", 40000, "10.77.0.1", 5001, (byte)TcpFlags.Syn, 1000)));
        var synAck = rig.Tx("srv", "vs").Single(f => f.Length > 34 && f[14 + 9] == 6);
        uint isn = BinaryPrimitives.ReadUInt32BigEndian(synAck.AsSpan(14 + 20 + 4));
        rig.Inject("srv", "vs", ScenarioRig.Eth(Vs, Vc, Tcp("10.88.0.5", 40000, "10.77.0.1", 5001, (byte)TcpFlags.Ack, 1001, isn + 1)));
        return isn;
    }

    /// <summary>A host redirect from 10.77.0.2 to 10.77.0.9 quoting srv's segment with sequence <paramref name="seq"/>.</summary>
    private static byte[] Redirect(uint seq)
    {
        var quoted = Tcp("10.77.0.1", 5001, "10.88.0.5", 40000, (byte)TcpFlags.Ack, seq)[..28];
        var b = Icmp("10.77.0.2", "10.77.0.1", 5, 1, 0, quoted);
        var h = b.AsSpan(20);
        BinaryPrimitives.WriteUInt32BigEndian(h[4..], A("10.77.0.9"));
        h[2] = h[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], Checksum.Compute(h));
        return ScenarioRig.Eth(Vs, Vc, b);
    }

    private static uint Gateway(ScenarioRig rig) => rig.Ns("srv").Routing.Lookup(A("10.88.0.5"))!.Gateway;

    [Fact]
    public void A_redirect_quoting_a_sequence_outside_the_window_is_counted_and_ignored()
    {
        var rig = Host();
        uint isn = Connect(rig);
        rig.Inject("srv", "vs", Redirect(isn + 1000));
        Assert.Equal(1, rig.Ns("srv").Mib[SnmpCounter.TcpExtOutOfWindowIcmps]);
        Assert.Equal(A("10.77.0.2"), Gateway(rig));
        // snd_una = snd_nxt = ISN + 1: that one is in the window.
        rig.Inject("srv", "vs", Redirect(isn + 1));
        Assert.Equal(1, rig.Ns("srv").Mib[SnmpCounter.TcpExtOutOfWindowIcmps]);
        Assert.Equal(A("10.77.0.9"), Gateway(rig));
    }

    [Fact]
    public void A_learned_redirect_lasts_ip_rt_gc_timeout_then_the_route_is_used_again()
    {
        var rig = Host();
        uint isn = Connect(rig);
        rig.Inject("srv", "vs", Redirect(isn + 1), advanceNs: 0);
        Assert.Equal(A("10.77.0.9"), Gateway(rig));
        rig.Advance(RouteTable.RedirectLifetimeNs);
        Assert.Equal(A("10.77.0.9"), Gateway(rig));
        rig.Advance(1_000_000);
        Assert.Equal(A("10.77.0.2"), Gateway(rig));
        // A new redirect learns it again, for another 300 s.
        rig.Inject("srv", "vs", Redirect(isn + 1));
        Assert.Equal(A("10.77.0.9"), Gateway(rig));
    }
}
