using System.Runtime.CompilerServices;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>errno values the map code returns (negated), as in include/uapi/asm-generic/errno*.h and include/linux/errno.h.</summary>
public static class BpfErrno
{
    public const int EPERM = 1, ENOENT = 2, EBADF = 9, ENOMEM = 12, EAGAIN = 11, EFAULT = 14, EEXIST = 17, ENODEV = 19, EINVAL = 22,
        ENOSPC = 28, E2BIG = 7, EOVERFLOW = 75, EOPNOTSUPP = 95, ENOTSUPP = 524;
}

/// <summary>map_flags and update flags of union bpf_attr (include/uapi/linux/bpf.h).</summary>
public static class BpfMapFlags
{
    public const uint NoPrealloc = 1, NoCommonLru = 2, NumaNode = 4, Rdonly = 8, Wronly = 0x10, ZeroSeed = 0x40,
        RdonlyProg = 0x80, WronlyProg = 0x100, Mmapable = 0x400, PreserveElems = 0x800, InnerMap = 0x1000;
    public const uint AccessMask = Rdonly | Wronly | RdonlyProg | WronlyProg;

    /// <summary>Update flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK.</summary>
    public const ulong Any = 0, NoExist = 1, Exist = 2, Lock = 4;

    /// <summary>bpf_map_flags_access_ok: a map cannot be both read-only and write-only for programs.</summary>
    public static bool AccessOk(uint flags) => (flags & (RdonlyProg | WronlyProg)) != (RdonlyProg | WronlyProg);
}

/// <summary>A map spec the kernel refuses (BPF_MAP_CREATE's errno), or an operation Softnet cannot model.</summary>
public sealed class BpfMapException(int errno, string message) : Exception(message)
{
    /// <summary>The positive errno the kernel's BPF_MAP_CREATE returns for the same spec.</summary>
    public int Errno { get; } = errno;
}

/// <summary>
/// One or more map types as <see cref="BpfMapFactory"/> finds them (the kernel's bpf_map_ops per type): the spec check
/// (map_alloc_check, or the checks at the top of map_alloc) and the constructor. Every non-abstract subclass in the
/// assembly is registered, so a new map type is a new file.
/// </summary>
public abstract class BpfMapKind
{
    public abstract BpfMapType[] Types { get; }

    /// <summary>0, or the negative errno BPF_MAP_CREATE gives for <paramref name="spec"/>.</summary>
    public abstract int Check(BpfMapSpec spec, int possibleCpus);

    public abstract BpfMap Create(BpfMapSpec spec, int possibleCpus);
}

/// <summary>Small pieces the maps share.</summary>
internal static class BpfMapUtil
{
    public static int RoundUp8(int n) => (n + 7) & ~7;

    public static uint RoundUpPow2(uint n) => n <= 1 ? 1 : 1u << (32 - System.Numerics.BitOperations.LeadingZeroCount(n - 1));

    public static uint U32(ReadOnlySpan<byte> key) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(key);

    /// <summary>The common flag rule of map updates: anything above BPF_EXIST (BPF_F_LOCK aside) is -EINVAL.</summary>
    public static bool BadUpdateFlags(ulong flags) => (flags & ~BpfMapFlags.Lock) > BpfMapFlags.Exist;

    /// <summary>bpf_array_get_next_key: index-ordered keys for every array-shaped map.</summary>
    public static bool ArrayNextKey(int maxEntries, ReadOnlySpan<byte> key, Span<byte> next)
    {
        uint index = key.Length >= 4 ? U32(key) : uint.MaxValue;
        if (index >= (uint)maxEntries)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(next, 0);
            return true;
        }
        if (index == (uint)maxEntries - 1) return false;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(next, index + 1);
        return true;
    }

    /// <summary>
    /// The kernel's jhash (Bob Jenkins' lookup3, include/linux/jhash.h) over <paramref name="key"/>, which htab uses to
    /// pick a bucket. With seed 0 (BPF_F_ZERO_SEED) the bucket of every key, and so the get_next_key order, is the
    /// kernel's.
    /// </summary>
    public static uint JHash(ReadOnlySpan<byte> k, uint seed)
    {
        uint a, b, c;
        a = b = c = 0xdeadbeefu + (uint)k.Length + seed;
        int len = k.Length;
        int i = 0;
        while (len > 12)
        {
            a += U32(k[i..]);
            b += U32(k[(i + 4)..]);
            c += U32(k[(i + 8)..]);
            Mix(ref a, ref b, ref c);
            len -= 12;
            i += 12;
        }
        if (len == 0) return c;
        var t = k[i..];
        switch (len)
        {
            case 12: c += (uint)t[11] << 24; goto case 11;
            case 11: c += (uint)t[10] << 16; goto case 10;
            case 10: c += (uint)t[9] << 8; goto case 9;
            case 9: c += t[8]; goto case 8;
            case 8: b += (uint)t[7] << 24; goto case 7;
            case 7: b += (uint)t[6] << 16; goto case 6;
            case 6: b += (uint)t[5] << 8; goto case 5;
            case 5: b += t[4]; goto case 4;
            case 4: a += (uint)t[3] << 24; goto case 3;
            case 3: a += (uint)t[2] << 16; goto case 2;
            case 2: a += (uint)t[1] << 8; goto case 1;
            case 1: a += t[0]; break;
        }
        Final(ref a, ref b, ref c);
        return c;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Rol(uint x, int s) => System.Numerics.BitOperations.RotateLeft(x, s);

    private static void Mix(ref uint a, ref uint b, ref uint c)
    {
        a -= c; a ^= Rol(c, 4); c += b;
        b -= a; b ^= Rol(a, 6); a += c;
        c -= b; c ^= Rol(b, 8); b += a;
        a -= c; a ^= Rol(c, 16); c += b;
        b -= a; b ^= Rol(a, 19); a += c;
        c -= b; c ^= Rol(b, 4); b += a;
    }

    private static void Final(ref uint a, ref uint b, ref uint c)
    {
        c ^= b; c -= Rol(b, 14);
        a ^= c; a -= Rol(c, 11);
        b ^= a; b -= Rol(a, 25);
        c ^= b; c -= Rol(b, 16);
        a ^= c; a -= Rol(c, 4);
        b ^= a; b -= Rol(a, 14);
        c ^= b; c -= Rol(b, 24);
    }
}

/// <summary>
/// Ids for programs stored in prog arrays (the kernel's prog idr, which a user-side lookup of a prog array returns):
/// handed out on first use, from 1.
/// </summary>
public static class BpfProgramIds
{
    private static readonly ConditionalWeakTable<BpfProgram, object> Ids = new();
    private static int _next;

    public static uint Of(BpfProgram prog) => (uint)(int)Ids.GetValue(prog, static _ => Interlocked.Increment(ref _next));
}
