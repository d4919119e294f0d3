namespace Softnet.Capture.Live;

/// <summary>One Softnet per interface, for both live port kinds: an exclusive flock on a file named for the interface
/// and its namespace, released when the port closes the fd (or its process dies). The file stays after the port goes:
/// unlinking a lock file lets a later opener lock an inode nobody else sees.</summary>
public static unsafe class LiveInterfaceLock
{
    /// <summary>The exclusive lock one Softnet holds on an interface (/run/softnet/&lt;netns or "host"&gt;-&lt;ifname&gt;.lock,
    /// the same path for both live port kinds): flock LOCK_EX|LOCK_NB, refused clearly when another holds it.
    /// Returns the locked fd (closing it releases the lock).</summary>
    public static int Take(string? netns, string ifname)
    {
        string path = PathOf(netns, ifname);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        int fd = LiveSyscalls.open(path, XskSyscalls.ORdwr | XskSyscalls.OCreat | XskSyscalls.OCloexec, 0x1a4);
        if (fd < 0) throw new LivePortException($"cannot open the interface lock {path}: {XskSyscalls.Describe(XskSyscalls.Errno)}", XskSyscalls.Errno);
        if (LiveSyscalls.flock(fd, XskSyscalls.LockEx | XskSyscalls.LockNb) != 0)
        {
            int errno = XskSyscalls.Errno;
            LiveSyscalls.close(fd);
            string holder = "";
            try { holder = File.ReadAllText(path).Trim(); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new LivePortException(errno == XskSyscalls.Eagain
                ? $"interface '{ifname}' ({netns ?? "host"}) is already in use by another Softnet{(holder.Length > 0 ? $" (pid {holder})" : "")}: {path} is locked"
                : $"flock {path}: {XskSyscalls.Describe(errno)}", errno);
        }
        XskSyscalls.ftruncate(fd, 0);
        var pid = System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId + "\n");
        fixed (byte* p = pid) XskSyscalls.write(fd, p, (nuint)pid.Length);
        return fd;
    }

    public static string PathOf(string? netns, string ifname)
        => $"/run/softnet/{(string.IsNullOrEmpty(netns) ? "host" : netns)}-{ifname}.lock";

}
