using System.Buffers.Binary;
using System.Numerics;
using Softnet.Packets;

namespace Softnet.Netfilter.Conntrack;

/// <summary>SCTP conntrack states (enum sctp_conntrack); <see cref="Max"/> is sIV in the transition table.</summary>
public enum SctpCtState : byte
{
    None = 0,
    Closed,
    CookieWait,
    CookieEchoed,
    Established,
    ShutdownSent,
    ShutdownRecd,
    ShutdownAckSent,
    HeartbeatSent,
    Max,
}

/// <summary>ip_ct_sctp: the state, each direction's verification tag (what a packet in that direction must carry),
/// which ends sent an INIT, and the heartbeat-vtag-failed flag with the direction it failed in.</summary>
public struct SctpConnState
{
    public uint Vtag0, Vtag1;
    public SctpCtState State;
    internal byte Init;
    internal bool HeartbeatVtagFailed;
    internal byte LastDir;

    [System.Diagnostics.CodeAnalysis.UnscopedRef]
    internal ref uint Vtag(int dir) => ref dir == 0 ? ref Vtag0 : ref Vtag1;
    internal readonly bool InitSent(int dir) => (Init & (1 << dir)) != 0;
    internal void SetInit(int dir, bool sent) => Init = (byte)(sent ? Init | 1 << dir : Init & ~(1 << dir));
}

/// <summary>
/// SCTP connection tracking as nf_conntrack_proto_sctp.c: sctp_error's length and CRC32c checks, do_basic_checks'
/// walk over every chunk, sctp_new's rules for what may start an entry, the verification-tag checks of RFC 9260
/// 8.5 (INIT with tag 0, ABORT and SHUTDOWN_COMPLETE by their T bit, COOKIE_ECHO, the heartbeat tag recovery), the
/// sctp_conntracks[dir][chunk][state] table, ASSURED on reaching ESTABLISHED, and a timeout per state.
/// </summary>
internal sealed class SctpTracker : L4Tracker
{
    public override byte Protocol => IpProtocols.Sctp;

    // Chunk types (SCTP_CID_*).
    internal const byte Data = 0, InitChunk = 1, InitAck = 2, Sack = 3, Heartbeat = 4, HeartbeatAck = 5, Abort = 6, Shutdown = 7,
        ShutdownAck = 8, ErrorChunk = 9, CookieEcho = 10, CookieAck = 11, ShutdownComplete = 14;

    /// <summary>SCTP_CHUNK_FLAG_T: the tag is the sender's own (reflected), not the receiver's.</summary>
    private const byte FlagT = 0x01;

    private const int HeaderLength = 12, ChunkHeaderLength = 4, InitHeaderLength = 16;

    private const SctpCtState sNO = SctpCtState.None, sCL = SctpCtState.Closed, sCW = SctpCtState.CookieWait,
        sCE = SctpCtState.CookieEchoed, sES = SctpCtState.Established, sSS = SctpCtState.ShutdownSent,
        sSR = SctpCtState.ShutdownRecd, sSA = SctpCtState.ShutdownAckSent, sHS = SctpCtState.HeartbeatSent, sIV = SctpCtState.Max;

    // [dir][row][old state]: rows INIT, INIT_ACK, ABORT, SHUTDOWN, SHUTDOWN_ACK, ERROR, COOKIE_ECHO, COOKIE_ACK,
    // SHUTDOWN_COMPLETE, HEARTBEAT, HEARTBEAT_ACK; columns sNO sCL sCW sCE sES sSS sSR sSA sHS.
    private static readonly SctpCtState[,,] Table =
    {
        {   // ORIGINAL
            { sCL, sCL, sCW, sCE, sES, sCL, sCL, sSA, sCW },
            { sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sCL },
            { sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
            { sCL, sCL, sCW, sCE, sSS, sSS, sSR, sSA, sCL },
            { sSA, sCL, sCW, sCE, sES, sSA, sSA, sSA, sSA },
            { sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sCL },
            { sCL, sCL, sCE, sCE, sES, sSS, sSR, sSA, sCL },
            { sCL, sCL, sCW, sES, sES, sSS, sSR, sSA, sCL },
            { sCL, sCL, sCW, sCE, sES, sSS, sSR, sCL, sCL },
            { sHS, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS },
            { sCL, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS },
        },
        {   // REPLY
            { sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sIV },
            { sIV, sCW, sCW, sCE, sES, sSS, sSR, sSA, sIV },
            { sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sIV },
            { sIV, sCL, sCW, sCE, sSR, sSS, sSR, sSA, sIV },
            { sIV, sCL, sCW, sCE, sES, sSA, sSA, sSA, sIV },
            { sIV, sCL, sCW, sCL, sES, sSS, sSR, sSA, sIV },
            { sIV, sCL, sCE, sCE, sES, sSS, sSR, sSA, sIV },
            { sIV, sCL, sCW, sES, sES, sSS, sSR, sSA, sIV },
            { sIV, sCL, sCW, sCE, sES, sSS, sSR, sCL, sIV },
            { sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sHS },
            { sIV, sCL, sCW, sCE, sES, sSS, sSR, sSA, sES },
        },
    };

    /// <summary>sctp_new_state: the row a chunk type selects (-1: DATA, SACK and the rest leave the state alone).</summary>
    private static int Row(byte type) => type switch
    {
        InitChunk => 0, InitAck => 1, Abort => 2, Shutdown => 3, ShutdownAck => 4, ErrorChunk => 5, CookieEcho => 6,
        CookieAck => 7, ShutdownComplete => 8, Heartbeat => 9, HeartbeatAck => 10, _ => -1,
    };

    internal static SctpCtState NewState(int dir, SctpCtState old, byte type)
    {
        int row = Row(type);
        return row < 0 ? old : Table[dir, row, (int)old];
    }

    private static readonly string[] Names =
        { "NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT" };

    /// <summary>sctp_conntrack_names, as conntrack -L prints the state.</summary>
    public static string StateName(SctpCtState s) => (int)s < Names.Length ? Names[(int)s] : "INVALID";

    /// <summary>The nf_conntrack_sctp_timeout_ key of each state (index SctpCtState; NONE has none).</summary>
    internal static string TimeoutKey(int state) => state is > 0 and < (int)SctpCtState.Max ? Names[state].ToLowerInvariant() : "";

    /// <summary>sctp_timeouts[]: CLOSED 10 s, COOKIE_WAIT and COOKIE_ECHOED 3 s, ESTABLISHED 210 s, the SHUTDOWN states
    /// 3 s, HEARTBEAT_SENT 30 s; NONE takes CLOSED's (nf_conntrack_sctp_init_net).</summary>
    public static long[] DefaultTimeouts()
    {
        const long S = 1_000_000_000L;
        return new[] { 10 * S, 10 * S, 3 * S, 3 * S, 210 * S, 3 * S, 3 * S, 3 * S, 30 * S };
    }

    /// <summary>A chunk's header at <paramref name="offset"/> (for_each_sctp_chunk's skb_header_pointer): false past the end.</summary>
    private static bool ChunkAt(ReadOnlySpan<byte> l4, int offset, out byte type, out byte flags, out ushort length)
    {
        type = flags = 0;
        length = 0;
        if (offset >= l4.Length || l4.Length - offset < ChunkHeaderLength) return false;
        type = l4[offset];
        flags = l4[offset + 1];
        length = BinaryPrimitives.ReadUInt16BigEndian(l4[(offset + 2)..]);
        return true;
    }

    private static int NextChunk(int offset, ushort length) => offset + ((length + 3) & ~3);

    /// <summary>The initiate tag of the INIT / INIT_ACK whose chunk starts at <paramref name="offset"/>; false when the
    /// init header does not fit.</summary>
    private static bool InitiateTag(ReadOnlySpan<byte> l4, int offset, out uint tag)
    {
        tag = 0;
        int at = offset + ChunkHeaderLength;
        if (l4.Length - at < InitHeaderLength) return false;
        tag = BinaryPrimitives.ReadUInt32BigEndian(l4[at..]);
        return true;
    }

    /// <summary>do_basic_checks: every chunk walked; a COOKIE_ECHO or COOKIE_ACK not first, anything after an INIT,
    /// INIT_ACK or SHUTDOWN_COMPLETE, a zero chunk length, or no chunk at all fail. <paramref name="map"/> gets a bit
    /// per chunk type below 32 (every type the checks test).</summary>
    private static bool BasicChecks(ReadOnlySpan<byte> l4, out uint map)
    {
        map = 0;
        bool alone = false;
        int count = 0;
        for (int off = HeaderLength; ChunkAt(l4, off, out byte type, out _, out ushort len); off = NextChunk(off, len), count++)
        {
            if (type is InitChunk or InitAck or ShutdownComplete) alone = true;
            if ((type is CookieAck or CookieEcho || alone) && count != 0) return false;
            if (len == 0) return false;
            if (type < 32) map |= 1u << type;
        }
        return count != 0;
    }

    private static bool Has(uint map, byte type) => (map & (1u << type)) != 0;

    /// <summary>sctp_new: the first packet's chunks, each from NONE in the original direction, must all lead somewhere
    /// (DATA and other state-neutral chunks do not); an INIT must carry tag 0 and gives the reply direction its
    /// initiate tag, a HEARTBEAT gives the original direction the packet's tag, anything else the reply direction.</summary>
    private static bool New(Connection ct, ReadOnlySpan<byte> l4, uint vtag)
    {
        ref var s = ref ct.Sctp;
        s = default;
        for (int off = HeaderLength; ChunkAt(l4, off, out byte type, out _, out ushort len); off = NextChunk(off, len))
        {
            var next = NewState(0, SctpCtState.None, type);
            if (next is SctpCtState.None or SctpCtState.Max) return false;
            if (type == InitChunk)
            {
                if (vtag != 0 || !InitiateTag(l4, off, out uint tag)) return false;
                s.Vtag1 = tag;
            }
            else if (type == Heartbeat) s.Vtag0 = vtag;
            else s.Vtag1 = vtag;
            s.State = SctpCtState.None;
        }
        return true;
    }

    /// <summary>sctp_error: a packet shorter than the common header is invalid; in PREROUTING with
    /// nf_conntrack_checksum, one nothing verified yet (CHECKSUM_NONE) must carry the right CRC32c.</summary>
    private static bool SctpError(ref PacketContext p, ReadOnlySpan<byte> l4, ConntrackOptions o, HookPoint hook)
    {
        if (l4.Length < HeaderLength) return true;
        if (hook != HookPoint.PreRouting || !o.Checksum || p.IpSummed != CsumState.None) return false;
        // Only a whole packet can be summed; the linear bytes of a longer one leave it unverified.
        int whole = p.Length - (p.IsIpv6 ? p.TransportOffset : p.IpHeaderLength);
        if (l4.Length < whole) return false;
        return BinaryPrimitives.ReadUInt32LittleEndian(l4[8..]) != Crc32c(l4);
    }

    /// <summary>sctp_compute_cksum: CRC32c over the packet with its checksum field taken as zero, as the field holds it
    /// (read little-endian).</summary>
    internal static uint Crc32c(ReadOnlySpan<byte> sctp)
    {
        uint crc = Crc(~0u, sctp[..8]);
        crc = BitOperations.Crc32C(crc, 0u);
        return ~Crc(crc, sctp[HeaderLength..]);
    }

    private static uint Crc(uint crc, ReadOnlySpan<byte> b)
    {
        for (; b.Length >= 8; b = b[8..]) crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(b));
        foreach (byte x in b) crc = BitOperations.Crc32C(crc, x);
        return crc;
    }

    /// <summary>sctp_manip_pkt (nf_nat_proto.c): the port NAT chose, then, when the whole common header is there, the
    /// CRC32c computed again over the rest of the packet (whatever it was before: NAT also mends a bad one), the
    /// addresses being outside it. <paramref name="sctp"/> runs from the SCTP header to the packet's end.</summary>
    internal static void ManipPort(Span<byte> sctp, bool source, ushort port)
    {
        if (sctp.Length < 4) return;
        BinaryPrimitives.WriteUInt16BigEndian(sctp[(source ? 0 : 2)..], port);
        if (sctp.Length < HeaderLength) return;
        BinaryPrimitives.WriteUInt32LittleEndian(sctp[8..], Crc32c(sctp));
    }

    /// <summary>nf_conntrack_sctp_packet.</summary>
    public override int Packet(Connection ct, ref PacketContext p, ReadOnlySpan<byte> l4, int dir, long now, ConntrackOptions o, HookPoint hook)
    {
        if (SctpError(ref p, l4, o, hook)) return ConntrackTable.InvalidVerdict;
        if (!BasicChecks(l4, out uint map)) return ConntrackTable.InvalidVerdict;
        uint vtag = BinaryPrimitives.ReadUInt32BigEndian(l4[4..]);
        if (!ct.Confirmed)
        {
            // Out of the blue, these chunks are discarded (RFC 9260 8.4): they cannot start an entry.
            if (Has(map, Abort) || Has(map, ShutdownComplete) || Has(map, CookieAck)) return ConntrackTable.InvalidVerdict;
            if (!New(ct, l4, vtag)) return ConntrackTable.InvalidVerdict;
        }
        ref var s = ref ct.Sctp;
        // The verification tag (8.5), unless a chunk with its own rules (8.5.1) is in the packet.
        const uint ownRules = 1u << InitChunk | 1u << ShutdownComplete | 1u << CookieEcho | 1u << Abort | 1u << ShutdownAck
            | 1u << Heartbeat | 1u << HeartbeatAck;
        if ((map & ownRules) == 0 && vtag != s.Vtag(dir)) return ConntrackTable.InvalidVerdict;

        var next = SctpCtState.None;
        bool ignore = false;
        for (int off = HeaderLength; ChunkAt(l4, off, out byte type, out byte flags, out ushort len); off = NextChunk(off, len))
        {
            switch (type)
            {
                case InitChunk:
                    if (vtag != 0) return ConntrackTable.InvalidVerdict;
                    break;
                case Abort or ShutdownComplete:
                    // The T bit: the sender reflects the receiver's tag (its own, as the peer would have it).
                    if (vtag != s.Vtag((flags & FlagT) != 0 ? 1 - dir : dir)) return ConntrackTable.InvalidVerdict;
                    break;
                case CookieEcho:
                    if (vtag != s.Vtag(dir)) return ConntrackTable.InvalidVerdict;
                    break;
                case CookieAck:
                    s.Init = 0;
                    break;
                case Heartbeat:
                    if (s.Vtag(dir) == 0) s.Vtag(dir) = vtag;
                    else if (vtag != s.Vtag(dir))
                    {
                        // A peer restarted behind our back: let one heartbeat through unrefreshed, and learn the new
                        // tags if the other side answers it.
                        if (Has(map, Data) || ignore) return ConntrackTable.InvalidVerdict;
                        s.HeartbeatVtagFailed = true;
                        s.LastDir = (byte)dir;
                        ignore = true;
                        continue;
                    }
                    else s.HeartbeatVtagFailed = false;
                    break;
                case HeartbeatAck:
                    if (s.Vtag(dir) == 0) s.Vtag(dir) = vtag;
                    else if (vtag != s.Vtag(dir))
                    {
                        if (Has(map, Data) || ignore) return ConntrackTable.InvalidVerdict;
                        if (!s.HeartbeatVtagFailed || s.LastDir == dir) return ConntrackTable.InvalidVerdict;
                        s.HeartbeatVtagFailed = false;
                        s.Vtag(dir) = vtag;
                        s.Vtag(1 - dir) = 0;
                    }
                    else s.HeartbeatVtagFailed = false;
                    break;
            }

            var old = s.State;
            next = NewState(dir, old, type);
            if (next == SctpCtState.Max) return ConntrackTable.InvalidVerdict;

            if (type == InitChunk)
            {
                if (!InitiateTag(l4, off, out uint tag)) return ConntrackTable.InvalidVerdict;
                if (s.InitSent(dir) && s.InitSent(1 - dir)) s.SetInit(1 - dir, false);
                s.SetInit(dir, true);
                s.Vtag(1 - dir) = tag;
                // An INIT retransmitted into a closed entry does not renew it: a reused port (or a NAT in front)
                // cannot keep it, and its NAT binding, alive for ever.
                if (next == SctpCtState.Closed && old == SctpCtState.Closed && ct.Confirmed) ignore = true;
            }
            else if (type == InitAck)
            {
                if (!InitiateTag(l4, off, out uint tag)) return ConntrackTable.InvalidVerdict;
                uint expected = s.Vtag(1 - dir);
                if (!s.InitSent(1 - dir) && expected != 0 && expected != tag) return ConntrackTable.InvalidVerdict;
                // An INIT collision: the INIT_ACK must carry the tag the crossing INIT announced.
                if (s.InitSent(dir) && s.InitSent(1 - dir) && expected != tag) return ConntrackTable.InvalidVerdict;
                s.Vtag(1 - dir) = tag;
            }

            s.State = next;
            if (old != next && next == SctpCtState.Established) ct.Status |= CtStatus.Assured;
        }

        if (ignore) return ConntrackTable.AcceptUnrefreshed;
        return ConntrackTable.Refresh(ct, now, o.SctpTimeoutsNs[(int)next]);
    }
}
