using Softnet.Packets;

namespace Softnet.Netfilter.Conntrack;

/// <summary>nf_conntrack_gre_packet: the unreplied timeout until a reply was seen, then the stream timeout and ASSURED
/// (the first reply still sees SEEN_REPLY clear: the core sets it after the tracker ran). The tuple's keys are 0: a
/// version-0 GRE header has none (gre_pkt_to_tuple behaves as the generic tracker), and without the PPTP helper's
/// keymap Softnet does not read version 1's call id.</summary>
internal sealed class GreTracker : L4Tracker
{
    public override byte Protocol => IpProtocols.Gre;

    public override int Packet(Connection ct, ref PacketContext p, ReadOnlySpan<byte> l4, int dir, long now, ConntrackOptions o, HookPoint hook)
    {
        if ((ct.Status & CtStatus.SeenReply) == 0) return ConntrackTable.Refresh(ct, now, o.GreTimeout.Ticks * 100);
        ConntrackTable.Refresh(ct, now, o.GreStreamTimeout.Ticks * 100);
        ct.Status |= CtStatus.Assured;
        return ConntrackTable.AcceptVerdict;
    }
}
