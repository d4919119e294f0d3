namespace Softnet.Netfilter.Conntrack;

/// <summary>
/// TCP connection tracking as nf_conntrack_proto_tcp.c: the tcp_conntracks[dir][index][state] transition
/// table, tcp_new, tcp_in_window (Guido van Rooij's window checks), the IGNORE / RST special cases and the
/// per-state timeouts.
/// </summary>
internal static class TcpTracker
{
    internal const byte SynSet = 0, SynAckSet = 1, FinSet = 2, AckSet = 3, RstSet = 4, NoneSet = 5;

    // ip_ct_tcp_state flags
    internal const byte FlagWindowScale = 0x01, FlagSackPerm = 0x02, FlagCloseInit = 0x04, FlagBeLiberal = 0x08,
        FlagDataUnacknowledged = 0x10, FlagMaxAckSet = 0x20, FlagExpChallengeAck = 0x40, FlagSimultaneousOpen = 0x80;

    private const TcpCtState sNO = TcpCtState.None, sSS = TcpCtState.SynSent, sSR = TcpCtState.SynRecv,
        sES = TcpCtState.Established, sFW = TcpCtState.FinWait, sCW = TcpCtState.CloseWait, sLA = TcpCtState.LastAck,
        sTW = TcpCtState.TimeWait, sCL = TcpCtState.Close, sS2 = TcpCtState.SynSent2, sIV = TcpCtState.Max, sIG = TcpCtState.Ignore;

    // [dir][index][old state]: columns sNO sSS sSR sES sFW sCW sLA sTW sCL sS2.
    private static readonly TcpCtState[,,] Table =
    {
        {   // ORIGINAL
            /* syn    */ { sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2 },
            /* synack */ { sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR },
            /* fin    */ { sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV },
            /* ack    */ { sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV },
            /* rst    */ { sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
            /* none   */ { sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV },
        },
        {   // REPLY
            /* syn    */ { sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2 },
            /* synack */ { sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR },
            /* fin    */ { sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV },
            /* ack    */ { sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG },
            /* rst    */ { sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
            /* none   */ { sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV },
        },
    };

    internal static TcpCtState Transition(int dir, int index, TcpCtState old) => Table[dir, index, (int)old];

    private static readonly string[] Names =
        { "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2" };

    public static string StateName(TcpCtState s) => (int)s < Names.Length ? Names[(int)s] : "INVALID";

    internal const int TimeoutRetrans = 10, TimeoutUnack = 11;

    /// <summary>tcp_timeouts[]: 2 min SYN_SENT, 60 s SYN_RECV, 5 days ESTABLISHED, 2 min FIN_WAIT, 60 s CLOSE_WAIT,
    /// 30 s LAST_ACK, 2 min TIME_WAIT, 10 s CLOSE, 2 min SYN_SENT2, 5 min RETRANS, 5 min UNACK.</summary>
    public static long[] DefaultTimeouts()
    {
        const long S = 1_000_000_000L;
        return new[] { 120 * S, 120 * S, 60 * S, 432000 * S, 120 * S, 60 * S, 30 * S, 120 * S, 10 * S, 120 * S, 300 * S, 300 * S };
    }

    private static byte Index(byte flags)
    {
        if ((flags & 0x04) != 0) return RstSet;
        if ((flags & 0x02) != 0) return (flags & 0x10) != 0 ? SynAckSet : SynSet;
        if ((flags & 0x01) != 0) return FinSet;
        if ((flags & 0x10) != 0) return AckSet;
        return NoneSet;
    }

    /// <summary>tcp_valid_flags: combinations of FIN/SYN/RST/ACK/URG conntrack accepts (PSH, ECE, CWR ignored).</summary>
    private static bool ValidFlags(byte flags)
    {
        int f = flags & 0x37; // FIN SYN RST ACK URG
        return f is 0x02 or 0x22 or 0x12 or 0x04 or 0x14 or 0x11 or 0x31 or 0x10 or 0x30;
    }

    private static bool Before(uint a, uint b) => (int)(a - b) < 0;
    private static bool After(uint a, uint b) => (int)(b - a) < 0;

    private static uint SegmentEnd(ref PacketContext p)
        => p.TcpSeq + (uint)p.TcpPayloadLength + ((p.TcpFlags & 0x02) != 0 ? 1u : 0u) + ((p.TcpFlags & 0x01) != 0 ? 1u : 0u);

    /// <summary>tcp_options: window scale and SACK-permitted from a SYN.</summary>
    private static void Options(ref PacketContext p, ref TcpPeerState s)
    {
        s.Scale = 0;
        s.Flags &= FlagBeLiberal;
        if (p.TcpSackPermitted) s.Flags |= FlagSackPerm;
        if (p.TcpWindowScale >= 0)
        {
            s.Scale = (byte)Math.Min((int)p.TcpWindowScale, 14);
            s.Flags |= FlagWindowScale;
        }
    }

    /// <summary>nf_conntrack_tcp_packet. Returns 1 accept, 0 invalid (detach), -1 drop, -2 repeat lookup.</summary>
    public static int Packet(ConntrackTable table, Connection ct, ref PacketContext p, int dir, long now)
    {
        var o = table.Options;
        if (!ValidFlags(p.TcpFlags)) return ConntrackTable.InvalidVerdict;
        if (!ct.Confirmed && !New(table, ct, ref p)) return ConntrackTable.InvalidVerdict;

        var old = ct.TcpState;
        byte index = Index(p.TcpFlags);
        var next = Transition(dir, index, old);
        bool skipWindow = false;

        switch (next)
        {
            case TcpCtState.SynSent:
                if (old < TcpCtState.TimeWait) break;
                // Reopening a closed or aborted connection: drop the old entry and look up again.
                if (((ct.Seen(dir).Flags | ct.Seen(1 - dir).Flags) & FlagCloseInit) != 0
                    || (ct.LastDir == dir && ct.LastIndex == RstSet))
                {
                    table.Kill(ct);
                    return ConntrackTable.RepeatLookup;
                }
                goto case TcpCtState.Ignore;
            case TcpCtState.Ignore:
                if (index == SynAckSet && ct.LastIndex == SynSet && ct.LastDir != dir && p.TcpAck == ct.LastEnd)
                {
                    // A SYN/ACK answering a SYN we ignored: both ends are in sync, resync from the saved SYN.
                    old = TcpCtState.SynSent;
                    next = TcpCtState.SynRecv;
                    ref var s = ref ct.Seen(ct.LastDir);
                    s.End = s.MaxEnd = ct.LastEnd;
                    s.MaxWin = ct.LastWin == 0 ? 1u : ct.LastWin;
                    s.Scale = ct.LastWscale;
                    ct.LastFlags = (byte)(ct.LastFlags & ~FlagExpChallengeAck);
                    s.Flags = ct.LastFlags;
                    ref var r = ref ct.Seen(dir);
                    r.End = r.MaxEnd = r.MaxWin = r.MaxAck = 0;
                    r.Scale = 0;
                    r.Flags &= FlagBeLiberal;
                    break;
                }
                ct.LastIndex = index;
                ct.LastDir = (byte)dir;
                ct.LastSeq = p.TcpSeq;
                ct.LastEnd = SegmentEnd(ref p);
                ct.LastWin = p.TcpWindow;
                if (index == SynSet && dir == 0)
                {
                    var seen = new TcpPeerState();
                    ct.LastFlags = ct.LastWscale = 0;
                    Options(ref p, ref seen);
                    if ((seen.Flags & FlagWindowScale) != 0) { ct.LastFlags |= FlagWindowScale; ct.LastWscale = seen.Scale; }
                    if ((seen.Flags & FlagSackPerm) != 0) ct.LastFlags |= FlagSackPerm;
                    if (old == TcpCtState.LastAck) ct.LastFlags |= FlagExpChallengeAck;
                }
                if (old == TcpCtState.SynSent && index == AckSet && dir == 1) ct.LastAck = p.TcpAck;
                // NF_ACCEPT straight out of the tracker: no nf_ct_refresh_acct, so neither the timeout nor the counters move.
                return ConntrackTable.AcceptUnrefreshed;
            case TcpCtState.Max:
                return ConntrackTable.InvalidVerdict;
            case TcpCtState.TimeWait:
                if (old == TcpCtState.LastAck && index == AckSet && ct.LastDir != dir && ct.LastIndex == SynSet
                    && (ct.LastFlags & FlagExpChallengeAck) != 0)
                {
                    // RFC 5961 challenge ACK to a SYN: not the last ACK of the close.
                    ct.LastFlags = (byte)(ct.LastFlags & ~FlagExpChallengeAck);
                    return ConntrackTable.AcceptUnrefreshed;
                }
                break;
            case TcpCtState.SynSent2:
                ct.LastFlags |= FlagSimultaneousOpen;
                break;
            case TcpCtState.SynRecv:
                if (dir == 1 && index == AckSet && (ct.LastFlags & FlagSimultaneousOpen) != 0) next = TcpCtState.Established;
                break;
            case TcpCtState.Close:
                if (index != RstSet) break;
                if (CanEarlyDrop(ct)) { skipWindow = true; break; }
                if ((ct.Seen(1 - dir).Flags & FlagMaxAckSet) != 0 && ct.LastIndex != SynSet)
                {
                    uint seq = p.TcpSeq;
                    bool established = ct.TcpState == TcpCtState.Established;
                    if (seq == 0 && !established) break;
                    if (Before(seq, ct.Seen(1 - dir).MaxAck) && !o.TcpIgnoreInvalidRst) return ConntrackTable.InvalidVerdict;
                    if (!established || seq == ct.Seen(1 - dir).MaxAck) break;
                    if (ct.LastIndex == AckSet && ct.LastDir == dir && seq == ct.LastEnd) break;
                    next = old;
                }
                if ((((ct.Status & CtStatus.SeenReply) != 0 && ct.LastIndex == SynSet)
                     || ((ct.Status & CtStatus.Assured) == 0 && ct.LastIndex == AckSet))
                    && p.TcpAck == ct.LastEnd)
                {
                    skipWindow = true;
                    break;
                }
                if (old == TcpCtState.SynSent && ct.LastIndex == AckSet && ct.LastDir == 1 && p.TcpSeq == ct.LastAck)
                    skipWindow = true;
                break;
        }

        if (!skipWindow)
        {
            var res = InWindow(table, ct, dir, index, ref p);
            if (res == WindowResult.Ignore) return ConntrackTable.AcceptUnrefreshed;
            if (res == WindowResult.Invalid)
            {
                HandleInvalid(table, ct, dir, index, now);
                return ConntrackTable.InvalidVerdict;
            }
        }

        ct.LastIndex = index;
        ct.LastDir = (byte)dir;
        ct.TcpState = next;
        if (old != next && next == TcpCtState.FinWait) ct.Seen(dir).Flags |= FlagCloseInit;

        var t = o.TcpTimeoutsNs;
        long timeout;
        if (ct.Retrans >= o.TcpMaxRetrans && t[(int)next] > t[TimeoutRetrans]) timeout = t[TimeoutRetrans];
        else if (index == RstSet) timeout = t[(int)TcpCtState.Close];
        else if (((ct.Seen0.Flags | ct.Seen1.Flags) & FlagDataUnacknowledged) != 0 && t[(int)next] > t[TimeoutUnack]) timeout = t[TimeoutUnack];
        else if (ct.LastWin == 0 && t[(int)next] > t[TimeoutRetrans]) timeout = t[TimeoutRetrans];
        else timeout = t[(int)next];

        if ((ct.Status & CtStatus.SeenReply) == 0)
        {
            if ((p.TcpFlags & 0x04) != 0)
            {
                // Only a RST came back: not a connection worth keeping.
                table.Kill(ct);
                return ConntrackTable.AcceptVerdict;
            }
            if (index == SynSet && old == TcpCtState.SynSent) return ConntrackTable.AcceptVerdict; // SYN retransmit keeps its timer
            if (next == TcpCtState.Established && timeout > t[TimeoutUnack]) timeout = t[TimeoutUnack];
        }
        else if ((ct.Status & CtStatus.Assured) == 0 && old is TcpCtState.SynRecv or TcpCtState.Established && next == TcpCtState.Established)
        {
            ct.Status |= CtStatus.Assured;
        }
        if ((ct.Status & CtStatus.FixedTimeout) == 0) ct.ExpiresNs = now + timeout;
        return ConntrackTable.AcceptVerdict;
    }

    internal static bool CanEarlyDrop(Connection ct)
        => ct.TcpState is TcpCtState.FinWait or TcpCtState.LastAck or TcpCtState.TimeWait or TcpCtState.Close or TcpCtState.CloseWait;

    /// <summary>tcp_new: a SYN starts SYN_SENT; with tcp_loose an ACK picks the connection up mid-stream (liberal).</summary>
    private static bool New(ConntrackTable table, Connection ct, ref PacketContext p)
    {
        var state = Transition(0, Index(p.TcpFlags), TcpCtState.None);
        if (state >= TcpCtState.Max) return false;
        ct.Seen0 = default;
        ct.Seen1 = default;
        ct.TcpState = TcpCtState.None;
        ref var s = ref ct.Seen0;
        s.End = SegmentEnd(ref p);
        s.MaxWin = p.TcpWindow == 0 ? 1u : p.TcpWindow;
        if (state == TcpCtState.SynSent)
        {
            s.MaxEnd = s.End;
            Options(ref p, ref s);
        }
        else
        {
            if (!table.Options.TcpLoose) return false;
            s.MaxEnd = s.End + s.MaxWin;
            ct.Seen0.Flags = ct.Seen1.Flags = FlagSackPerm | FlagBeLiberal;
        }
        ct.LastIndex = NoneSet;
        return true;
    }

    private enum WindowResult { Ignore, Invalid, Accept }

    private static void InitSender(ref TcpPeerState sender, ref TcpPeerState receiver, ref PacketContext p, uint end, uint win, int dir)
    {
        sender.End = sender.MaxEnd = end;
        sender.MaxWin = win == 0 ? 1 : win;
        Options(ref p, ref sender);
        if (dir == 1 && !((sender.Flags & FlagWindowScale) != 0 && (receiver.Flags & FlagWindowScale) != 0))
            sender.Scale = receiver.Scale = 0;
    }

    /// <summary>tcp_in_window: the sequence / ack bounds I-IV; updates the peers' window data when in window.</summary>
    private static WindowResult InWindow(ConntrackTable table, Connection ct, int dir, byte index, ref PacketContext p)
    {
        ref var sender = ref ct.Seen(dir);
        ref var receiver = ref ct.Seen(1 - dir);
        bool syn = (p.TcpFlags & 0x02) != 0, ack = (p.TcpFlags & 0x10) != 0, rst = (p.TcpFlags & 0x04) != 0;
        uint seq = p.TcpSeq, ackSeq = p.TcpAck, sack = ackSeq;
        ushort winRaw = p.TcpWindow;
        uint win = winRaw;
        uint end = SegmentEnd(ref p);
        if ((receiver.Flags & FlagSackPerm) != 0 && p.TcpHasSack && After(p.TcpSackMax, sack)) sack = p.TcpSackMax;

        if (sender.MaxWin == 0)
        {
            if (syn)
            {
                InitSender(ref sender, ref receiver, ref p, end, win, dir);
                if (!ack) return WindowResult.Accept; // simultaneous open
            }
            else
            {
                sender.End = end;
                uint swin = win << sender.Scale;
                sender.MaxWin = swin == 0 ? 1 : swin;
                sender.MaxEnd = end + sender.MaxWin;
                if (receiver.MaxWin == 0) receiver.End = receiver.MaxEnd = sack;
                else if (sack == receiver.End + 1) receiver.End++;
            }
        }
        else if (syn && After(end, sender.End) && ct.TcpState is TcpCtState.SynSent or TcpCtState.SynRecv)
        {
            InitSender(ref sender, ref receiver, ref p, end, win, dir);
            if (dir == 1 && !ack) return WindowResult.Accept;
        }

        if (!ack) ackSeq = sack = receiver.End;
        else if (rst && ackSeq == 0) ackSeq = sack = receiver.End;

        if (rst && seq == 0 && ct.TcpState == TcpCtState.SynSent) seq = end = sender.End;

        bool liberal = (sender.Flags & FlagBeLiberal) != 0 || table.Options.TcpBeLiberal;
        WindowResult Bad(WindowResult r) => liberal ? WindowResult.Accept : r;
        uint maxAckWindow = sender.MaxWin > 66000 ? sender.MaxWin : 66000;

        // Each failed bound returns at once; with be_liberal the packet is accepted but the window data
        // is left as it was (nf_tcp_log_invalid returns ACCEPT straight out of tcp_in_window).
        if (!Before(seq, sender.MaxEnd + 1))
        {
            uint overshot = end - sender.MaxEnd + 1;
            bool ackOk = After(sack, receiver.End - maxAckWindow - 1);
            bool inRecv = receiver.MaxWin != 0 && After(end, sender.End - receiver.MaxWin - 1);
            if (inRecv && ackOk && overshot <= receiver.MaxWin && Before(sack, receiver.End + 1))
            {
                sender.End = end;
                sender.Flags |= FlagDataUnacknowledged;
                return Bad(WindowResult.Ignore);
            }
            return Bad(WindowResult.Invalid);
        }
        if (!Before(sack, receiver.End + 1)) return Bad(WindowResult.Invalid);
        if (!(receiver.MaxWin == 0 || After(end, sender.End - receiver.MaxWin - 1))) return Bad(WindowResult.Ignore);
        if (!After(sack, receiver.End - maxAckWindow - 1)) return Bad(WindowResult.Ignore);
        return ContinueAccepted(ct, ref sender, ref receiver, dir, index, seq, ackSeq, sack, end, win, winRaw, syn, ack);
    }

    private static WindowResult ContinueAccepted(Connection ct, ref TcpPeerState sender, ref TcpPeerState receiver, int dir, byte index,
        uint seq, uint ackSeq, uint sack, uint end, uint win, ushort winRaw, bool syn, bool ack)
    {
        if (!syn) win <<= sender.Scale;
        uint swin = win + (sack - ackSeq);
        if (sender.MaxWin < swin) sender.MaxWin = swin;
        if (After(end, sender.End))
        {
            sender.End = end;
            sender.Flags |= FlagDataUnacknowledged;
        }
        if (ack)
        {
            if ((sender.Flags & FlagMaxAckSet) == 0) { sender.MaxAck = ackSeq; sender.Flags |= FlagMaxAckSet; }
            else if (After(ackSeq, sender.MaxAck)) sender.MaxAck = ackSeq;
        }
        if (receiver.MaxWin != 0 && After(end, sender.MaxEnd)) receiver.MaxWin += end - sender.MaxEnd;
        if (After(sack + win, receiver.MaxEnd - 1))
        {
            receiver.MaxEnd = sack + win;
            if (win == 0) receiver.MaxEnd++;
        }
        if (ackSeq == receiver.End) receiver.Flags = (byte)(receiver.Flags & ~FlagDataUnacknowledged);
        if (index == AckSet)
        {
            if (ct.LastDir == dir && ct.LastSeq == seq && ct.LastAck == ackSeq && ct.LastEnd == end && ct.LastWin == winRaw)
                ct.Retrans++;
            else
            {
                ct.LastDir = (byte)dir;
                ct.LastSeq = seq;
                ct.LastAck = ackSeq;
                ct.LastEnd = end;
                ct.LastWin = winRaw;
                ct.Retrans = 0;
            }
        }
        return WindowResult.Accept;
    }

    /// <summary>nf_tcp_handle_invalid: an out-of-window FIN/RST answering the peer's FIN/RST shortens an assured entry's life.</summary>
    private static void HandleInvalid(ConntrackTable table, Connection ct, int dir, byte index, long now)
    {
        if ((ct.Status & CtStatus.Assured) == 0 || (ct.Status & CtStatus.FixedTimeout) != 0) return;
        if (index is not (RstSet or FinSet)) return;
        if (ct.LastDir != dir && ct.LastIndex is FinSet or RstSet)
        {
            long expires = ct.ExpiresNs - now;
            if (expires < 120_000_000_000L) return;
            long unack = table.Options.TcpTimeoutsNs[TimeoutUnack];
            if (expires > unack) ct.ExpiresNs = now + unack;
        }
        else
        {
            ct.LastIndex = index;
            ct.LastDir = (byte)dir;
        }
    }
}
