package recflow.spark;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system ({@code file:}) without a child process per file operation.
 *
 * <p>Without Hadoop's native library (pyspark does not ship it), {@link RawLocalFileSystem} runs
 * {@code chmod} for every file and directory it creates and {@code readlink} for every rename of
 * a streaming checkpoint file: about a hundred processes forked by the Spark JVM per micro-batch,
 * a few milliseconds each. {@link Raw} does the same two things with {@code java.nio} calls.
 * Everything else is Hadoop's own code.
 */
public final class DirectLocalFileSystem extends LocalFileSystem {
  public DirectLocalFileSystem() {
    super(new Raw());
  }

  /** {@link RawLocalFileSystem} with {@code chmod} and the symlink check done in process. */
  public static final class Raw extends RawLocalFileSystem {
    @Override
    public void setPermission(Path p, FsPermission permission) throws IOException {
      if (permission.getStickyBit()) {
        super.setPermission(p, permission); // java.nio sets no sticky bit
        return;
      }
      Files.setPosixFilePermissions(
          pathToFile(p).toPath(), PosixFilePermissions.fromString(permission.toString()));
    }

    @Override
    public FileStatus getFileLinkStatus(Path f) throws IOException {
      File file = pathToFile(f);
      if (Files.isSymbolicLink(file.toPath())) {
        return super.getFileLinkStatus(f);
      }
      // Not a link: the status of the file itself, as Hadoop gives when readlink prints nothing.
      return getFileStatus(f);
    }
  }
}
