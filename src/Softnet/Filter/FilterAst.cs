namespace Softnet.Filter;

/// <summary>Address qualifier (gencode.h Q_HOST...); Undef is libpcap's qerr, what an id gets with nothing to inherit.</summary>
internal enum Qa : byte { Default = 0, Host = 1, Net = 2, Port = 3, Gateway = 4, Proto = 5, Protochain = 6, Portrange = 7, Undef = 255 }

/// <summary>Protocol qualifier (gencode.h Q_LINK...).</summary>
internal enum Qp : byte
{
    Default = 0, Link, Ip, Arp, Rarp, Sctp, Tcp, Udp, Icmp, Igmp, Igrp, Atalk, Decnet, Lat, Sca, Moprc, Mopdl, Ipv6,
    Icmpv6, Ah, Esp, Pim, Vrrp, Aarp, Iso, Esis, Isis, Clnp, Stp, Ipx, Netbeui, IsisL1, IsisL2, IsisIih, IsisSnp,
    IsisCsnp, IsisPsnp, IsisLsp, Radio, Carp, Undef = 255,
}

/// <summary>Direction qualifier (gencode.h Q_SRC...).</summary>
internal enum Qd : byte { Default = 0, Src, Dst, Or, And, Addr1, Addr2, Addr3, Addr4, Ra, Ta, Undef = 255 }

/// <summary>struct qual: what an id's qualifiers are, set by a head or inherited from the term before it.</summary>
internal readonly record struct Qual(Qa Addr, Qp Proto, Qd Dir)
{
    public static readonly Qual Err = new(Qa.Undef, Qp.Undef, Qd.Undef);
}

/// <summary>A parsed filter expression; code generation walks it in the order bison reduces the rules.</summary>
internal abstract record FNode(int Pos);

internal sealed record AndNode(FNode L, FNode R) : FNode(L.Pos);

internal sealed record OrNode(FNode L, FNode R) : FNode(L.Pos);

internal sealed record NotNode(FNode X, int At) : FNode(At);

internal enum IdKind { Name, Num, Hid, HidMask, HidLen, Hid6, Hid6Len, Eid, Aid }

/// <summary>An id of the grammar (nid or pnum) with the qualifiers it carries.</summary>
internal sealed record IdNode(IdKind Kind, string Text, uint Value, string? Text2, Qual Q, int At) : FNode(At);

/// <summary>A protocol name alone ("tcp", "ip6"): gen_proto_abbrev.</summary>
internal sealed record ProtoNode(Qp Proto, int At) : FNode(At);

/// <summary>arth relop arth: gen_relation with a BPF jump code, reversed for the irelops.</summary>
internal sealed record RelNode(ushort Jmp, ANode A0, ANode A1, bool Reversed, int At) : FNode(At);

internal enum OtherKind { Broadcast, Multicast, Less, Greater, ByteOp, Vlan, Mpls, Pppoed, Pppoes, Geneve, Inbound, Outbound, Ifindex, Llc }

/// <summary>The primitives of the "other" rule.</summary>
internal sealed record OtherNode(OtherKind Kind, Qp Proto, uint N, bool HasN, char Op, uint N2, int At) : FNode(At);

/// <summary>Arithmetic (the arth rule).</summary>
internal abstract record ANode(int Pos);

internal sealed record ANum(uint Value, int At) : ANode(At);

internal sealed record ALen(int At) : ANode(At);

internal sealed record ALoad(Qp Proto, ANode Index, uint Size, int At) : ANode(At);

internal sealed record ABin(ushort AluOp, ANode L, ANode R) : ANode(L.Pos);

internal sealed record ANeg(ANode X, int At) : ANode(At);
